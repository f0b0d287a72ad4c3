"""A web app on the asyncio front: bank accounts over HTTP, chat and notifications over
WebSocket. Starlette, served by uvicorn (``pip install 'redis-eventstore[web]'``).

HTTP, JSON in and out (every state carries its version, also as the ``ETag``)::

    POST /accounts                  {"owner": "Alice"}            201, ETag: "1"
    GET  /accounts/{id}             ?version=N: the state as of version N
    POST /accounts/{id}/deposits    {"amount": 100}, If-Match: "1"
    POST /accounts/{id}/withdrawals {"amount": 30},  If-Match: "2"
         422 insufficient_funds: the rule refused it, nothing was stored
         409 conflict: the account moved past the If-Match version (reload, decide again)
    GET  /rooms/{room}              ?after=N: the messages after version N
    POST /rooms/{room}/messages     {"author": "ann", "text": "hi"}
    GET  /users/{user}/notifications
    POST /users/{user}/notifications {"text": "..."}               to one user
    POST /notifications              {"text": "..."}               to everybody

WebSocket, JSON frames::

    /rooms/{room}/ws?user=ann[&after=N]   the room's history, {"type": "live"}, then each new
                                          message; send {"text": "..."} to post
    /users/{user}/notifications/ws[?after=N&broadcast_after=M]
                                          the user's and everybody's notifications, the same way

Run: EVENTSTORE_URL=redis://127.0.0.1:6379/0 python web_app.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from aggregates import Aggregate, DomainEvent, projector
from eventstore import (
    AggregateNotFound,
    AsyncEventStore,
    AsyncLiveFeed,
    AsyncRepository,
    ConcurrencyError,
    LiveFeedFellBehind,
    LiveNotification,
    RecordedEvent,
)
from eventstore.examples.bank import Account, AccountNotOpen, InsufficientFunds

URL = os.environ.get("EVENTSTORE_URL", "redis://127.0.0.1:6379/0")
ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
EVERYONE = "@everyone"  # the broadcast aggregate's id: no user id can take it (see ID)
M = TypeVar("M", bound=BaseModel)


class MessagePosted(DomainEvent):
    """Someone said something in a chat room."""

    author: str
    text: str


class ChatRoom(Aggregate):
    """A chat room: its events are its history, so a late joiner misses nothing."""

    messages: int = 0

    def post(self, author: str, text: str) -> None:
        """Say ``text``: not empty, at most 2000 characters."""
        if not text.strip() or len(text) > 2000:
            raise ValueError("a message has 1 to 2000 characters")
        self.trigger(MessagePosted(author=author, text=text))

    @projector(MessagePosted)
    def _posted(self, event: MessagePosted) -> None:
        self.messages += 1


class Notified(DomainEvent):
    """A notification, in one user's ``Notifications`` or in everybody's (``EVERYONE``)."""

    text: str


# -- request bodies and errors ---------------------------------------------------------------


class OpenAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, pattern=ID.pattern)


class Amount(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount: int = Field(gt=0)


class Post(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author: str = Field(pattern=ID.pattern)
    text: str


class Text(BaseModel):
    """A notification, or a frame a chat client sends."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)


class ApiError(Exception):
    """An error answered as JSON: ``{"error": code, "message": ..., **details}``."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": code, "message": message, **details}


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status)


async def conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConcurrencyError)
    versions = {"expected_version": exc.expected_version, "actual_version": exc.actual_version}
    message = "someone else wrote first: reload, then decide again"
    return await api_error(request, ApiError(409, "conflict", message, **versions))


async def parse(request: Request, model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"at": list(e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        raise ApiError(400, "invalid_request", "the body is not valid", errors=errors) from None


def valid_id(value: str, what: str) -> str:
    if not ID.fullmatch(value):
        raise ApiError(400, "invalid_id", f"a {what} id has 1 to 64 of A-Z a-z 0-9 _ . -")
    return value


def version_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ApiError(400, "invalid_version", f"{name} is a version number, got {raw!r}")
    return int(raw)


def if_match(request: Request) -> int | None:
    """The version the client decided on (``If-Match: "3"``); ``None``: any (none, or ``*``)."""
    raw = request.headers.get("if-match", "*").strip()
    if raw == "*":
        return None
    if not raw.strip('"').isdigit():
        raise ApiError(400, "invalid_if_match", f'If-Match is a version like "3", got {raw!r}')
    return int(raw.strip('"'))


def account_json(account: Account, status: int = 200) -> Response:
    body = {"id": account.id, **account.state(), "version": account.version}
    return JSONResponse(body, status_code=status, headers={"ETag": f'"{account.version}"'})


def event_json(recorded: RecordedEvent) -> dict[str, Any]:
    """A frame for a stored event: its version tells a client where to resume."""
    frame = {"version": recorded.version, "at": recorded.recorded_at.isoformat(), **recorded.data}
    if isinstance(recorded.event, MessagePosted):
        return {"type": "message", "room": recorded.aggregate_id, **frame}
    scope = "broadcast" if recorded.aggregate_id == EVERYONE else "user"
    return {"type": "notification", "scope": scope, **frame}


# -- history, then live -----------------------------------------------------------------------


async def history_then_live(
    store: AsyncEventStore,
    aggregate_type: str,
    after: Mapping[str, int],
    caught_up: Callable[[], Awaitable[None]],
) -> AsyncGenerator[RecordedEvent, None]:
    """The events of some aggregates after the given versions, then new ones as they come:
    in order per aggregate, nothing lost, nothing twice. Calls ``caught_up`` in between."""
    seen = dict(after)
    # Subscribe BEFORE reading the history: an event appended in between is then both in
    # the history and announced, and the versions tell which to skip. The other way round,
    # it would be in neither.
    async with store.live(aggregate_type, aggregate_ids=list(seen)) as feed:
        for recorded in await read_after(store, aggregate_type, seen):
            yield recorded
        await caught_up()
        while True:
            try:
                async for note in feed:
                    for recorded in await announced(feed, note, seen):
                        yield recorded
                return  # the feed was stopped
            except LiveFeedFellBehind:  # this client was slow: notifications were dropped
                for recorded in await read_after(store, aggregate_type, seen):
                    yield recorded  # the store has them all


async def read_after(
    store: AsyncEventStore, aggregate_type: str, seen: dict[str, int]
) -> list[RecordedEvent]:
    """What the store has after the versions in ``seen`` (moved on to the last one read)."""
    reads = [store.read(aggregate_type, id_, from_version=v + 1) for id_, v in seen.items()]
    events = [recorded for batch in await asyncio.gather(*reads) for recorded in batch]
    for recorded in events:
        seen[recorded.aggregate_id] = recorded.version
    return events


async def announced(
    feed: AsyncLiveFeed, note: LiveNotification, seen: dict[str, int]
) -> list[RecordedEvent]:
    """The events a notification brings that ``seen`` has not had yet."""
    last = seen[note.aggregate_id]
    if note.version <= last:
        return []  # the history already had it
    missed: list[RecordedEvent] = []
    if note.version > last + 1:  # hints were lost (Pub/Sub is no delivery): read them
        missed = await feed.store.read(
            note.aggregate_type,
            note.aggregate_id,
            from_version=last + 1,
            to_version=note.version - 1,
        )
    recorded = await feed.fetch(note)
    seen[note.aggregate_id] = recorded.version
    return [*missed, recorded]


async def push_events(
    socket: WebSocket, store: AsyncEventStore, aggregate_type: str, after: Mapping[str, int]
) -> None:
    """Send the history then the live events to ``socket``, with ``{"type": "live"}`` between."""

    async def caught_up() -> None:
        await socket.send_json({"type": "live"})

    events = history_then_live(store, aggregate_type, after, caught_up)
    async with contextlib.aclosing(events):
        async for recorded in events:
            await socket.send_json(event_json(recorded))


async def converse(push: Coroutine[Any, Any, None], listen: Coroutine[Any, Any, None]) -> None:
    """Push and listen at once, until the client leaves (``listen`` returns) or a send fails."""
    try:
        async with asyncio.TaskGroup() as tasks:
            pusher = tasks.create_task(push)
            await listen
            pusher.cancel()  # the live feed closes with it: cancellation is safe on the store
    except* WebSocketDisconnect:
        pass  # the client left while a frame was on its way


# -- the app ---------------------------------------------------------------------------------


class WebApp:
    """The routes, around one store that the app's lifespan opens and closes."""

    accounts: AsyncRepository[Account]
    rooms: AsyncRepository[ChatRoom]

    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.namespace = url, namespace
        self._store: AsyncEventStore | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with await AsyncEventStore.from_url(self.url, namespace=self.namespace) as store:
            self._store = store
            self.accounts = AsyncRepository(store, Account, snapshot_every=50)
            self.rooms = AsyncRepository(store, ChatRoom, snapshot_every=100)
            try:
                yield
            finally:
                self._store = None

    @property
    def store(self) -> AsyncEventStore:
        if self._store is None:
            raise RuntimeError("the app is not started: its lifespan opens the store")
        return self._store

    # -- bank accounts over HTTP

    async def open_account(self, request: Request) -> Response:
        command = await parse(request, OpenAccount)
        account = Account(id=command.id)  # a new id unless the client chose one
        account.open(command.owner)
        await self.accounts.save(account)  # an id already taken is a conflict (409)
        response = account_json(account, 201)
        response.headers["Location"] = f"/accounts/{account.id}"
        return response

    async def get_account(self, request: Request) -> Response:
        account_id = valid_id(request.path_params["id"], "account")
        version = version_param(request, "version", None)
        if version == 0:
            raise ApiError(400, "invalid_version", "versions start at 1")
        return account_json(await self._account(account_id, version))

    async def deposit(self, request: Request) -> Response:
        return await self._move(request, Account.deposit)

    async def withdraw(self, request: Request) -> Response:
        return await self._move(request, Account.withdraw)

    async def _move(self, request: Request, command: Callable[[Account, int], None]) -> Response:
        """Run ``command`` on the account if it is still at the client's If-Match version,
        and save it expecting that version: a write in between is a ``ConcurrencyError``."""
        account_id = valid_id(request.path_params["id"], "account")
        amount = (await parse(request, Amount)).amount
        expected = if_match(request)
        for _ in range(5 if expected is None else 1):  # no If-Match: retry on the new state
            account = await self._account(account_id)
            if expected is not None and account.version != expected:
                stream = self.store.keys.stream("Account", account_id)
                raise ConcurrencyError(stream, expected, account.version)
            try:
                command(account, amount)
            except InsufficientFunds as refused:
                message = f"the balance is {refused.balance}, less than {refused.amount}"
                details = {"balance": refused.balance, "amount": refused.amount}
                raise ApiError(422, "insufficient_funds", message, **details) from None
            except (AccountNotOpen, ValueError) as refused:
                raise ApiError(422, "refused", str(refused)) from None
            try:
                await self.accounts.save(account)  # expects the version loaded
            except ConcurrencyError:
                if expected is not None:
                    raise
                continue
            return account_json(account)
        raise ApiError(503, "busy", "the account is too busy right now: try again")

    async def _account(self, account_id: str, version: int | None = None) -> Account:
        try:
            return await self.accounts.get(account_id, version)
        except AggregateNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None

    # -- the chat room

    async def post_message(self, room_id: str, author: str, text: str) -> int:
        """Post with optimistic concurrency: reload and retry if someone spoke first."""
        for _ in range(20):
            room = await self.rooms.get_or_none(room_id) or ChatRoom(room_id)
            try:
                room.post(author, text)
            except ValueError as refused:
                raise ApiError(422, "refused", str(refused)) from None
            with contextlib.suppress(ConcurrencyError):
                await self.rooms.save(room)
                return room.version
        raise ApiError(503, "busy", "the room is too busy right now: try again")

    async def room(self, request: Request) -> Response:
        room_id = valid_id(request.path_params["room"], "room")
        after = version_param(request, "after", 0) or 0
        events = await self.store.read("ChatRoom", room_id, from_version=after + 1)
        return JSONResponse({"room": room_id, "messages": [event_json(r) for r in events]})

    async def post_message_http(self, request: Request) -> Response:
        room_id = valid_id(request.path_params["room"], "room")
        post = await parse(request, Post)
        version = await self.post_message(room_id, post.author, post.text)
        return JSONResponse({"room": room_id, "version": version}, status_code=201)

    async def chat_socket(self, socket: WebSocket) -> None:
        """History then live messages to the client; its ``{"text": ...}`` frames are posted."""
        room_id, user = socket.path_params["room"], socket.query_params.get("user", "")
        after = socket.query_params.get("after", "0")
        if not (ID.fullmatch(room_id) and ID.fullmatch(user) and after.isdigit()):
            await socket.close(code=1008)  # refused before the handshake: HTTP 403
            return
        await socket.accept()

        async def listen() -> None:
            async for frame in socket.iter_text():
                try:
                    await self.post_message(room_id, user, Text.model_validate_json(frame).text)
                except (ValidationError, ApiError) as refused:
                    await socket.send_json({"type": "error", "message": str(refused)})

        push = push_events(socket, self.store, "ChatRoom", {room_id: int(after)})
        await converse(push, listen())

    # -- notifications: one aggregate per user, one for everybody

    async def notify(self, request: Request) -> Response:
        user = valid_id(request.path_params["user"], "user")
        return await self._append_notice(user, await parse(request, Text))

    async def broadcast(self, request: Request) -> Response:
        return await self._append_notice(EVERYONE, await parse(request, Text))

    async def _append_notice(self, to: str, notice: Text) -> Response:
        result = await self.store.append("Notifications", to, [Notified(text=notice.text)])
        return JSONResponse({"to": to, "version": result.last_version}, status_code=201)

    async def notifications(self, request: Request) -> Response:
        user = valid_id(request.path_params["user"], "user")
        mine, everybody = await asyncio.gather(  # two reads, pipelined on one connection
            self.store.read("Notifications", user), self.store.read("Notifications", EVERYONE)
        )
        return JSONResponse(
            {"user": user, "notifications": [event_json(r) for r in mine + everybody]}
        )

    async def notifications_socket(self, socket: WebSocket) -> None:
        user = socket.path_params["user"]
        after = [socket.query_params.get(name, "0") for name in ("after", "broadcast_after")]
        if not (ID.fullmatch(user) and all(value.isdigit() for value in after)):
            await socket.close(code=1008)
            return
        await socket.accept()

        async def listen() -> None:
            async for _ in socket.iter_text():
                pass  # nothing to say: waiting for the client to leave

        wanted = {user: int(after[0]), EVERYONE: int(after[1])}
        await converse(push_events(socket, self.store, "Notifications", wanted), listen())


def create_app(url: str = URL, namespace: str = "example-web") -> Starlette:
    """The app on the store at ``url`` / ``namespace``, opened when the server starts."""
    web = WebApp(url, namespace)
    routes = [
        Route("/accounts", web.open_account, methods=["POST"]),
        Route("/accounts/{id}", web.get_account, methods=["GET"]),
        Route("/accounts/{id}/deposits", web.deposit, methods=["POST"]),
        Route("/accounts/{id}/withdrawals", web.withdraw, methods=["POST"]),
        Route("/rooms/{room}", web.room, methods=["GET"]),
        Route("/rooms/{room}/messages", web.post_message_http, methods=["POST"]),
        WebSocketRoute("/rooms/{room}/ws", web.chat_socket),
        Route("/users/{user}/notifications", web.notifications, methods=["GET"]),
        Route("/users/{user}/notifications", web.notify, methods=["POST"]),
        WebSocketRoute("/users/{user}/notifications/ws", web.notifications_socket),
        Route("/notifications", web.broadcast, methods=["POST"]),
    ]
    handlers = {ApiError: api_error, ConcurrencyError: conflict}
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=web.lifespan)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the app with uvicorn until interrupted (Ctrl-C, SIGTERM)."""
    parser = argparse.ArgumentParser(description="the example web app on the asyncio front")
    parser.add_argument("--url", default=URL, help="Redis URL (default: $EVENTSTORE_URL)")
    parser.add_argument("--namespace", default="example-web")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    print(f"serving the store {args.namespace!r} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(args.url, args.namespace), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
