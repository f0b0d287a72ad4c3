"""``from_url("rediss://host:port", cluster=True, ssl_*=...)``: a Redis Cluster over TLS.

One TLS-only cluster node holding every slot (the cluster bus on TLS too) is enough to
show that the TLS options reach redis-py's cluster client and every node connection it
opens from the slot map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from eventstore import EventStore
from eventstore.testing._servers import RedisServer, TlsFiles, free_port
from tests.domain import Deposited
from tests.test_tls import _ca, _signed
from tests.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, TlsFiles]]:
    directory = tmp_path_factory.mktemp("tls-cluster")
    ca = _ca(directory, "cluster-ca")
    server = _signed(directory, "node", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost")
    client = _signed(directory, "client", ca, "extendedKeyUsage=clientAuth")
    node = RedisServer(
        tls=server,
        client_tls=client,
        config={
            "cluster-enabled": "yes",
            "tls-cluster": "yes",
            "cluster-port": str(free_port()),
            "cluster-node-timeout": "2000",
        },
    )
    node.start()
    try:
        with contextlib.closing(node.client()) as admin:
            admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]

            def ok() -> bool:
                info = admin.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                return "cluster_state:ok" in (info.decode() if isinstance(info, bytes) else info)

            wait_for(ok)
        yield node, client
    finally:
        node.close()


def test_a_tls_cluster_with_cluster_true(tls_node: tuple[RedisServer, TlsFiles]) -> None:
    node, files = tls_node
    url = f"rediss://127.0.0.1:{node.port}"
    with EventStore.from_url(
        url,
        namespace="tls",
        partitions=3,
        cluster=True,
        ssl_ca_certs=str(files.ca),
        ssl_certfile=str(files.cert),
        ssl_keyfile=str(files.key),
    ) as store:
        assert store.is_cluster
        store.append("Account", "acc", [Deposited(amount=5)], 0)
        assert [r.event.amount for r in store.read("Account", "acc")] == [5]  # type: ignore[attr-defined]
        group = store.consumer_group("g")
        seen: list[str] = []
        group.worker("w", lambda r: seen.append(r.aggregate_id)).run(stop_when_idle=True)
        assert seen == ["acc"]
