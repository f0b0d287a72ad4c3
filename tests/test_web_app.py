"""docs/examples/web_app.py under a real uvicorn server, through real HTTP and WebSocket clients.

Each test serves the app on a free port in a thread of its own (the app's lifespan opens
the store on the flushed test server), and talks to it with httpx and the websockets
library over TCP, as a browser would. One test runs the example as a program (its
``main()``) and stops it with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

import eventstore._async.live
from eventstore import AsyncEventStore, AsyncLiveFeed, LiveFeedFellBehind, LiveNotification

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "web_app.py"
sys.path.insert(0, str(EXAMPLE.parent))  # the example is a program, not a package module
import web_app  # noqa: E402
from web_app import Notified  # noqa: E402

T = TypeVar("T")
Frame = dict[str, Any]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def base_url(redis_url: str, namespace: str) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a socket bound here (no port race)."""
    sock = _free_socket()
    app = web_app.create_app(redis_url, namespace)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting (see the log above)"
        assert time.monotonic() < deadline, "the server did not start within 20 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def ws_url(base_url: str, path: str) -> str:
    return "ws" + base_url.removeprefix("http") + path


async def next_frame(socket: ClientConnection, timeout: float = 10) -> Frame:
    frame: Frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
    return frame


async def frames_until_live(socket: ClientConnection) -> list[Frame]:
    """The history the server sends on connecting, up to its ``{"type": "live"}`` frame."""
    history = []
    while (frame := await next_frame(socket))["type"] != "live":
        history.append(frame)
    return history


async def take(socket: ClientConnection, count: int) -> list[Frame]:
    return [await next_frame(socket) for _ in range(count)]


async def nothing_more(socket: ClientConnection, wait: float = 0.5) -> None:
    try:
        extra = await asyncio.wait_for(socket.recv(), wait)
    except TimeoutError:
        return
    pytest.fail(f"an unexpected frame arrived: {extra!r}")


# -- bank accounts over HTTP -----------------------------------------------------------------


def test_bank_account_flow(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        opened = http.post("/accounts", json={"owner": "Alice", "id": "acc-alice"})
        assert opened.status_code == 201, opened.text
        assert opened.headers["etag"] == '"1"'
        assert opened.headers["location"] == "/accounts/acc-alice"
        assert opened.json() == {
            "id": "acc-alice",
            "owner": "Alice",
            "balance": 0,
            "transactions": 0,
            "version": 1,
        }

        deposited = http.post(
            "/accounts/acc-alice/deposits", json={"amount": 100}, headers={"If-Match": '"1"'}
        )
        assert deposited.status_code == 200, deposited.text
        assert (deposited.json()["balance"], deposited.headers["etag"]) == (100, '"2"')
        withdrawn = http.post(
            "/accounts/acc-alice/withdrawals", json={"amount": 30}, headers={"If-Match": '"2"'}
        )
        assert (withdrawn.json()["balance"], withdrawn.json()["version"]) == (70, 3)

        # the rule: never more than the balance, and nothing is stored
        refused = http.post(
            "/accounts/acc-alice/withdrawals", json={"amount": 500}, headers={"If-Match": '"3"'}
        )
        assert refused.status_code == 422
        assert refused.json()["error"] == "insufficient_funds"
        assert (refused.json()["balance"], refused.json()["amount"]) == (70, 500)
        assert "70" in refused.json()["message"]
        assert http.get("/accounts/acc-alice").json()["version"] == 3

        # the state at a version
        assert http.get("/accounts/acc-alice", params={"version": 2}).json()["balance"] == 100
        assert http.get("/accounts/acc-alice", params={"version": 1}).json()["balance"] == 0
        assert http.get("/accounts/acc-alice", params={"version": 4}).status_code == 404
        assert http.get("/accounts/acc-nobody").status_code == 404

        # without If-Match the command runs on the latest state
        latest = http.post("/accounts/acc-alice/deposits", json={"amount": 5})
        assert (latest.json()["balance"], latest.headers["etag"]) == (75, '"4"')


def test_a_stale_version_is_a_conflict(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        http.post("/accounts", json={"owner": "Bob", "id": "acc-bob"})
        http.post("/accounts/acc-bob/deposits", json={"amount": 50}, headers={"If-Match": "1"})

        stale = http.post(
            "/accounts/acc-bob/withdrawals", json={"amount": 10}, headers={"If-Match": '"1"'}
        )
        assert stale.status_code == 409, stale.text
        body = stale.json()
        assert (body["error"], body["expected_version"], body["actual_version"]) == (
            "conflict",
            1,
            2,
        )
        ahead = http.post(
            "/accounts/acc-bob/withdrawals", json={"amount": 10}, headers={"If-Match": '"7"'}
        )
        assert ahead.status_code == 409
        assert ahead.json()["actual_version"] == 2
        assert http.get("/accounts/acc-bob").json()["balance"] == 50  # neither was stored

        taken = http.post("/accounts", json={"owner": "Mallory", "id": "acc-bob"})
        assert taken.status_code == 409
        assert http.get("/accounts/acc-bob").json()["owner"] == "Bob"


def test_two_writers_on_one_version_one_wins(base_url: str) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url) as http:
            await http.post("/accounts", json={"owner": "Cid", "id": "acc-cid"})
            await http.post("/accounts/acc-cid/deposits", json={"amount": 80})
            # both decided on version 2; each alone would pass the rule, both would not
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            "/accounts/acc-cid/withdrawals",
                            json={"amount": 60},
                            headers={"If-Match": '"2"'},
                        )
                        for _ in range(2)
                    )
                )
            )

    answers = run(main())
    assert sorted(answer.status_code for answer in answers) == [200, 409]
    assert httpx.get(f"{base_url}/accounts/acc-cid").json()["balance"] == 20


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"amount": -5}', {}),
        (b'{"amount": "10"}', {}),
        (b'{"amount": 10, "note": "x"}', {}),
        (b"not json", {}),
        (b'{"amount": 10}', {"If-Match": "W/x"}),
    ],
)
def test_bad_requests_are_400_with_a_json_error(
    base_url: str, body: bytes, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=base_url) as http:
        http.post("/accounts", json={"owner": "Dee", "id": "acc-dee"})
        answer = http.post("/accounts/acc-dee/deposits", content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"] in {"invalid_request", "invalid_if_match"}
        assert http.get("/accounts/acc-dee").json()["version"] == 1


# -- the chat room over WebSocket ------------------------------------------------------------


def say(text: str) -> str:
    return json.dumps({"text": text})


def test_two_users_in_one_room_see_each_others_messages_in_order(base_url: str) -> None:
    room = ws_url(base_url, "/rooms/lobby/ws")

    async def main() -> tuple[list[Frame], list[Frame]]:
        async with connect(f"{room}?user=ann") as ann, connect(f"{room}?user=bob") as bob:
            assert await frames_until_live(ann) == []
            assert await frames_until_live(bob) == []
            for i in range(5):
                await ann.send(say(f"ann {i}"))
                await bob.send(say(f"bob {i}"))
            return await asyncio.gather(take(ann, 10), take(bob, 10))

    seen_by_ann, seen_by_bob = run(main())
    assert seen_by_ann == seen_by_bob  # the same messages, in the same order
    assert [frame["version"] for frame in seen_by_ann] == list(range(1, 11))
    for user in ("ann", "bob"):
        said = [f["text"] for f in seen_by_ann if f["author"] == user]
        assert said == [f"{user} {i}" for i in range(5)]  # as each one sent them
    assert {frame["type"] for frame in seen_by_ann} == {"message"}
    history = httpx.get(f"{base_url}/rooms/lobby").json()["messages"]
    assert history == seen_by_ann


def test_a_late_joiner_gets_history_then_live_nothing_lost_or_doubled(base_url: str) -> None:
    before, during = [f"before {i}" for i in range(5)], [f"during {i}" for i in range(40)]

    async def join(delay: float, user: str) -> tuple[list[Frame], list[Frame]]:
        await asyncio.sleep(delay)
        async with connect(ws_url(base_url, f"/rooms/hall/ws?user={user}")) as socket:
            history = await frames_until_live(socket)
            live = await take(socket, len(before) + len(during) - len(history))
            await nothing_more(socket, 0.3)
            return history, live

    async def main() -> list[tuple[list[Frame], list[Frame]]]:
        async with httpx.AsyncClient(base_url=base_url) as http:
            for text in before:
                await http.post("/rooms/hall/messages", json={"author": "ann", "text": text})

            async def chatter() -> None:
                for text in during:
                    posted = await http.post(
                        "/rooms/hall/messages", json={"author": "bob", "text": text}
                    )
                    assert posted.status_code == 201, posted.text

            # joiners arrive while bob keeps talking: each one's history read races his posts
            talking = asyncio.create_task(chatter())
            joined = await asyncio.gather(*(join(0.01 * i, f"late{i}") for i in range(6)))
            await talking
            return joined

    for history, live in run(main()):
        frames = history + live
        assert [f["text"] for f in frames] == before + during
        assert [f["version"] for f in frames] == list(range(1, 46))
        assert len(history) >= len(before)


def test_a_joiner_resumes_after_a_version(base_url: str) -> None:
    for i in range(4):
        httpx.post(f"{base_url}/rooms/den/messages", json={"author": "ann", "text": f"m{i}"})

    async def main() -> tuple[list[Frame], Frame]:
        async with connect(ws_url(base_url, "/rooms/den/ws?user=bob&after=2")) as bob:
            history = await frames_until_live(bob)
            await bob.send(say("   "))  # the room's rule: refused, nothing stored
            return history, await next_frame(bob)

    history, refused = run(main())
    assert [frame["text"] for frame in history] == ["m2", "m3"]
    assert refused["type"] == "error"
    assert httpx.get(f"{base_url}/rooms/den").json()["messages"][-1]["version"] == 4


def test_a_bad_handshake_is_refused(base_url: str) -> None:
    async def main(path: str) -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(base_url, path)):
                pass
        return refused.value.response.status_code

    assert run(main("/rooms/lobby/ws?user=not%20a%20name")) == 403
    assert run(main("/rooms/lobby/ws")) == 403  # no user
    assert run(main("/users/ann/notifications/ws?after=-1")) == 403


def test_leaving_closes_the_live_feed(base_url: str, redis_url: str, namespace: str) -> None:
    async def main() -> None:
        async with connect(ws_url(base_url, "/rooms/attic/ws?user=ann")) as ann:
            await frames_until_live(ann)
            assert subscribers() == 1

    def subscribers() -> int:
        with redis.Redis.from_url(redis_url) as client:
            ((_, count),) = client.pubsub_numsub(f"{namespace}:live:ChatRoom")
            return int(count)

    run(main())
    deadline = time.monotonic() + 10
    while subscribers():  # the server cancels the pushing task, which closes its feed
        assert time.monotonic() < deadline, "the feed of a client that left is still open"
        time.sleep(0.02)


# -- notifications ---------------------------------------------------------------------------


def test_notifications_reach_the_right_users_only(base_url: str) -> None:
    def sockets(user: str, query: str = "") -> connect:
        return connect(ws_url(base_url, f"/users/{user}/notifications/ws{query}"))

    def by_scope(frames: list[Frame]) -> dict[str, list[str]]:
        scopes: dict[str, list[str]] = {"user": [], "broadcast": []}
        for frame in frames:
            assert frame["type"] == "notification"
            scopes[frame["scope"]].append(frame["text"])
        return scopes

    async def main() -> tuple[list[Frame], list[Frame], list[Frame], list[Frame]]:
        async with httpx.AsyncClient(base_url=base_url) as http:
            async with sockets("alice") as alice, sockets("bob") as bob:
                assert await frames_until_live(alice) == []
                assert await frames_until_live(bob) == []
                for path, text in [
                    ("/users/alice/notifications", "your order shipped"),
                    ("/users/bob/notifications", "you have a new follower"),
                    ("/notifications", "maintenance tonight"),
                    ("/users/alice/notifications", "your order was delivered"),
                    ("/users/carol/notifications", "carol is offline"),
                ]:
                    sent = await http.post(path, json={"text": text})
                    assert sent.status_code == 201, sent.text
                to_alice, to_bob = await asyncio.gather(take(alice, 3), take(bob, 2))
                await asyncio.gather(nothing_more(alice), nothing_more(bob))
            async with sockets("carol") as carol:  # she connects later: her history
                history = await frames_until_live(carol)
            async with sockets("carol", "?after=1&broadcast_after=1") as carol:
                assert await frames_until_live(carol) == []
                await http.post("/notifications", json={"text": "back online"})
                again = [await next_frame(carol)]
        return to_alice, to_bob, history, again

    to_alice, to_bob, carols_history, carols_live = run(main())
    assert by_scope(to_alice) == {
        "user": ["your order shipped", "your order was delivered"],
        "broadcast": ["maintenance tonight"],
    }
    assert by_scope(to_bob) == {
        "user": ["you have a new follower"],
        "broadcast": ["maintenance tonight"],
    }
    assert by_scope(carols_history) == {
        "user": ["carol is offline"],
        "broadcast": ["maintenance tonight"],
    }
    assert by_scope(carols_live) == {"user": [], "broadcast": ["back online"]}
    inbox = httpx.get(f"{base_url}/users/carol/notifications").json()["notifications"]
    assert [frame["text"] for frame in inbox] == [
        "carol is offline",
        "maintenance tonight",
        "back online",
    ]


class SmallQueueFeed(AsyncLiveFeed):
    """A live feed whose queue holds one notification: a burst overflows it for sure."""

    overflows = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "max_queue": 1})

    async def __anext__(self) -> LiveNotification:
        try:
            return await super().__anext__()
        except LiveFeedFellBehind:
            SmallQueueFeed.overflows += 1
            raise


def test_a_client_that_falls_behind_still_gets_everything_once(
    base_url: str, redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventstore._async.live, "AsyncLiveFeed", SmallQueueFeed)
    SmallQueueFeed.overflows = 0

    async def main() -> list[Frame]:
        url = ws_url(base_url, "/users/alice/notifications/ws")
        async with (
            connect(url) as alice,
            await AsyncEventStore.from_url(redis_url, namespace=namespace) as store,
        ):
            assert await frames_until_live(alice) == []
            await store.append("Notifications", "alice", [Notified(text="n0")])
            # a burst: the appends go out together, their notifications arrive together
            burst = [Notified(text=f"n{i}") for i in range(1, 200)]
            await asyncio.gather(
                *(store.append("Notifications", "alice", [event]) for event in burst)
            )
            frames = await take(alice, 200)
            await nothing_more(alice, 0.3)
            return frames

    frames = run(main())
    assert SmallQueueFeed.overflows >= 1  # the feed did fall behind
    assert [frame["version"] for frame in frames] == list(range(1, 201))
    assert sorted(frame["text"] for frame in frames) == sorted(f"n{i}" for i in range(200))


# -- the program -----------------------------------------------------------------------------


def test_main_serves_until_interrupted(redis_url: str, namespace: str) -> None:
    with _free_socket() as sock:  # a port free right now, for the program to bind
        port = sock.getsockname()[1]
    args = ["--url", redis_url, "--namespace", namespace, "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(EXAMPLE), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as program:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert program.poll() is None, program.communicate()
                try:
                    opened = httpx.post(f"{base}/accounts", json={"owner": "Eve", "id": "acc-eve"})
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the program did not start serving"
                    time.sleep(0.05)
            assert opened.status_code == 201, opened.text
            assert httpx.get(f"{base}/accounts/acc-eve").json()["owner"] == "Eve"
            program.send_signal(signal.SIGINT)
            out, err = program.communicate(timeout=30)
        finally:
            if program.poll() is None:
                program.kill()
    assert program.returncode == 0, err
    assert f"serving the store {namespace!r} on http://127.0.0.1:{port}" in out
    assert "Application shutdown complete" in err
