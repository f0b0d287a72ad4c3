"""The throwaway servers tests start: a port taken between choosing it and binding it."""

from __future__ import annotations

import socket

import pytest

from eventstore.testing import RedisServer


def _bound() -> socket.socket:
    """A port held the way a client connection holds its local port: bound, not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_a_first_start_moves_off_a_port_taken_meanwhile() -> None:
    with _bound() as taken, _bound() as bus_taken:
        taken_port, bus_port = taken.getsockname()[1], bus_taken.getsockname()[1]
        server = RedisServer(config={"cluster-enabled": "yes", "cluster-port": str(bus_port)})
        server.port = taken_port  # as if a client connection took it after free_port()
        try:
            server.start()
            assert server.port != taken_port
            assert server.config["cluster-port"] != str(bus_port)
            with server.client() as client:
                assert client.ping()
        finally:
            server.close()


def test_a_restart_keeps_its_port_or_fails_clearly() -> None:
    server = RedisServer()
    try:
        server.start()
        port = server.port
        server.stop()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            with pytest.raises(RuntimeError, match="Address already in use"):
                server.start()
        assert server.port == port
        server.start()
        with server.client() as client:
            assert client.ping()
    finally:
        server.close()
