"""TLS: a server with TLS only and client certificates required, certificates made here.

The store connects with ``rediss://`` and the CA / client certificate given as keyword
options or as URL query parameters, and so does the CLI (``--tls-*``); without the client
certificate, or trusting another CA, connecting fails with a clear error.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from eventstore.cli import cli
from eventstore.testing._servers import RedisServer, TlsFiles
from tests.domain import Deposited, Opened
from tests.fronts import Front, open_store

OPENSSL = "/usr/bin/openssl"
_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")  # fast to make


pytestmark = pytest.mark.both_fronts


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run([OPENSSL, *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    _openssl(directory, "req", "-x509", *_EC_KEY, "-nodes", "-days", "2",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}")  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


def _signed(directory: Path, name: str, ca: tuple[Path, Path], extension: str) -> TlsFiles:
    (directory / f"{name}.ext").write_text(extension + "\n")
    _openssl(directory, "req", *_EC_KEY, "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]),
             "-CAkey", str(ca[1]), "-CAcreateserial", "-days", "2",
             "-out", f"{name}.crt", "-extfile", f"{name}.ext")  # fmt: skip
    return TlsFiles(cert=directory / f"{name}.crt", key=directory / f"{name}.key", ca=ca[0])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    directory = tmp_path_factory.mktemp("tls")
    ca = _ca(directory, "test-ca")
    other_ca = _ca(directory, "other-ca")
    server = _signed(directory, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost")
    client = _signed(directory, "client", ca, "extendedKeyUsage=clientAuth")
    stranger = _signed(directory, "stranger", other_ca, "extendedKeyUsage=clientAuth")
    return {"server": server, "client": client, "stranger": stranger}


@pytest.fixture(scope="module")
def tls_server(certs: dict[str, TlsFiles]) -> Iterator[RedisServer]:
    server = RedisServer(tls=certs["server"], client_tls=certs["client"])
    server.start()
    try:
        yield server
    finally:
        server.close()


def _options(files: TlsFiles) -> dict[str, Any]:
    return {"ssl_ca_certs": str(files.ca), "ssl_certfile": str(files.cert),
            "ssl_keyfile": str(files.key)}  # fmt: skip


def test_the_server_is_tls_only(tls_server: RedisServer) -> None:
    plain = redis.Redis(port=tls_server.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    plain.close()


def test_append_and_read_over_tls_with_options(
    tls_server: RedisServer, certs: dict[str, TlsFiles], front: Front
) -> None:
    ns = f"tls{uuid.uuid4().hex[:6]}"
    with open_store(front, tls_server.url, namespace=ns, **_options(certs["client"])) as store:
        store.append("Account", "a1", [Opened(owner="ann"), Deposited(amount=5)], 0)
        assert [r.event for r in store.read("Account", "a1")] == [
            Opened(owner="ann"),
            Deposited(amount=5),
        ]


def test_the_same_options_as_url_query_parameters(
    tls_server: RedisServer, certs: dict[str, TlsFiles], front: Front
) -> None:
    files = certs["client"]
    query = f"ssl_ca_certs={files.ca}&ssl_certfile={files.cert}&ssl_keyfile={files.key}"
    ns = f"tls{uuid.uuid4().hex[:6]}"
    with open_store(front, f"{tls_server.url}?{query}", namespace=ns) as store:
        store.append("Account", "a1", [Opened(owner="ann")], 0)
        assert store.version_of("Account", "a1") == 1


def test_without_a_client_certificate_it_fails_clearly(
    tls_server: RedisServer, certs: dict[str, TlsFiles], front: Front
) -> None:
    with pytest.raises(redis.ConnectionError) as excinfo:
        open_store(front, tls_server.url, ssl_ca_certs=str(certs["client"].ca))
    # TLS 1.3: the server refuses the missing certificate after the handshake; the client
    # reads its alert on the first command, or finds the connection closed if it wrote first
    # (asyncio's TLS transport reports the alert as the connection reset by the server)
    text = str(excinfo.value)
    wordings = ["certificate required", "EOF occurred in violation of protocol"]
    if front == "async":
        wordings.append("Connection reset by peer")
    assert any(wording in text for wording in wordings), text


def test_a_server_signed_by_another_ca_is_refused(
    tls_server: RedisServer, certs: dict[str, TlsFiles], front: Front
) -> None:
    with pytest.raises(redis.ConnectionError) as excinfo:
        open_store(front, tls_server.url, **_options(certs["stranger"]))
    assert "certificate verify failed" in str(excinfo.value)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_over_tls(
    tls_server: RedisServer, certs: dict[str, TlsFiles], front: Front
) -> None:
    ns = f"tls{uuid.uuid4().hex[:6]}"
    with open_store(front, tls_server.url, namespace=ns, **_options(certs["client"])) as store:
        store.append("Account", "a1", [Opened(owner="ann")], 0)
    files = certs["client"]
    tls = ["--tls-ca", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]
    base = ["--url", tls_server.url, "-n", ns, "--app", "tests.domain", *tls]
    code, out, err = _cli(*base, "events", "Account", "a1", "--json")
    assert code == 0, err
    assert '"Opened"' in out
    code, out, err = _cli(*base[:-6], "events", "Account", "a1")  # no certificates
    assert code == 1
    assert err.startswith("error: cannot reach Redis at rediss://127.0.0.1:")
    assert "give --tls-cert and --tls-key if it requires client certificates" in err
