"""A worker or a group refused by the ACL raises ``PermissionDenied`` naming what is missing,
on both fronts (not the bare ``ResponseError`` of the command that was refused)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from eventstore import EventStore, PermissionDenied, RecordedEvent
from eventstore._core.acl import acl_tokens
from tests.domain import Deposited, Opened
from tests.fronts import Front
from tests.group_fronts import handler, opened, ready, run
from tests.servers import ALL_SERVERS, server_binary
from tests.test_acl import AclServer

pytestmark = pytest.mark.both_fronts
FAST = timedelta(milliseconds=50)


@pytest.fixture(scope="module", params=ALL_SERVERS)
def acl_server(request: pytest.FixtureRequest) -> Iterator[AclServer]:
    binary = server_binary(request.param)
    server = AclServer(binary)
    try:
        yield server
    finally:
        server.close()


async def _noop(recorded: RecordedEvent) -> None:
    del recorded


# what a worker sends first of each: its own pending (XREADGROUP), the claim of idle
# entries (XAUTOCLAIM), the acknowledgement riding with its next read (XACK)
@pytest.mark.parametrize("refused", ["xreadgroup", "xautoclaim", "xack"])
def test_a_worker_refused_a_command_names_it(
    acl_server: AclServer, front: Front, refused: str
) -> None:
    ns = f"acl{uuid.uuid4().hex[:6]}"
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    user = f"no-{refused}-{front}"
    url = acl_server.user(user, [*tokens, f"-{refused}"])

    async def main() -> PermissionDenied:
        async with opened(front, url, namespace=ns) as store:
            await ready(store.append("Account", "a1", [Opened(owner="ann")], 0))
            await ready(store.append("Account", "a2", [Opened(owner="bob")], 0))
            group = await ready(store.consumer_group("mailer"))
            worker = group.worker("w1", handler(front, _noop), batch_size=1, claim_idle=FAST)
            with pytest.raises(PermissionDenied) as excinfo:
                await run(worker, stop_when_idle=True)
            return excinfo.value

    error = asyncio.run(main())
    assert error.user == user
    assert (error.permission, error.command) == (f"+{refused}", refused)
    assert f"Redis user {user!r} lacks the permission +{refused}" in str(error)


def test_a_group_refused_its_creation_names_it(acl_server: AclServer, front: Front) -> None:
    ns = f"acl{uuid.uuid4().hex[:6]}"
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    user = f"no-xgroup-{front}"
    url = acl_server.user(user, [t for t in tokens if not t.startswith("+xgroup")])

    async def main() -> PermissionDenied:
        async with opened(front, url, namespace=ns) as store:
            with pytest.raises(PermissionDenied) as excinfo:
                await ready(store.consumer_group("mailer"))
            return excinfo.value

    error = asyncio.run(main())
    assert error.user == user
    assert error.permission == "+xgroup|create"
    assert error.keys == (f"{{{ns}:p0}}:log",)


# what a projection runner sends: the lease (SET), the log (XREAD), the model in the
# page's transaction (HSET, refused while queuing), the checkpoint read (HGETALL)
@pytest.mark.parametrize("refused", ["set", "xread", "hincrby", "hgetall"])
def test_a_projection_refused_a_command_names_it(
    acl_server: AclServer, front: Front, refused: str
) -> None:
    from tests.projection_fronts import balances
    from tests.projection_fronts import opened as opened_store

    ns = f"acl{uuid.uuid4().hex[:6]}"
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    user = f"proj-no-{refused}-{front}"
    url = acl_server.user(user, [*tokens, f"-{refused}"])

    admin = f"redis://admin:admin-pw@127.0.0.1:{acl_server.server.port}/0"
    with EventStore.from_url(admin, namespace=ns) as writer:  # appends need SET too
        writer.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=3)], 0)

    async def main() -> PermissionDenied:
        async with opened_store(front, url, namespace=ns) as store:
            projection = balances(front, store, version=1)
            with pytest.raises(PermissionDenied) as excinfo:
                await ready(projection.run(until_caught_up=True))
            return excinfo.value

    error = asyncio.run(main())
    assert error.user == user
    assert (error.permission, error.command) == (f"+{refused}", refused)


@pytest.mark.parametrize("selection", ["all", "Account"])
def test_a_live_feed_refused_its_subscription_names_it(
    acl_server: AclServer, front: Front, selection: str
) -> None:
    from tests.fronts import open_store

    ns = f"acl{uuid.uuid4().hex[:6]}"
    refused = "psubscribe" if selection == "all" else "subscribe"
    tokens = acl_tokens(ns, redis_version=acl_server.version)
    user = f"live-no-{refused}-{front}"
    url = acl_server.user(user, [*tokens, f"-{refused}"])
    store = open_store(front, url, namespace=ns)

    def listen() -> None:
        with store.live() if selection == "all" else store.live(["Account"]) as feed:
            store.append("Account", "a1", [Opened(owner="ann")], 0)
            next(iter(feed))

    try:
        with pytest.raises(PermissionDenied) as excinfo:
            listen()
    finally:
        store.close()
    assert excinfo.value.user == user
    assert excinfo.value.permission == f"+{refused}"
