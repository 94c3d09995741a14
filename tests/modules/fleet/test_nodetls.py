"""The fleet's TLS (`nodetls`): one context per CA shared by the nodes, each connection
presenting its own node's certificate and key (parsed once, at set-up), and handshakes
that fail naming the node, the address and why: a server of another CA, a server whose
certificate does not name the address connected to, a TLS 1.1 server, and one that
never answers.

The handshakes of the first tests run over memory BIOs, without sockets; the others
against a server on 127.0.0.1 on a thread of its own. Every wait is bounded by `WAIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from modules.certs import ca as ca_mod
from modules.certs import enroll, tls
from modules.fleet import FleetOptions, nodetls
from modules.hub import tlslayer
from tests.fakes import eventually
from tests.modules.fleet.conftest import WAIT, FleetThread
from tests.modules.hub.test_pyopenssl import Recording, handshake

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)


def write_node(folder: Path, ca: ca_mod.KeyPair, node: str) -> enroll.EdgeCertPaths:
    """`node`'s files as the fleet keeps them (`<folder>/<node>/ca.crt, node.crt, node.key`)."""
    key = ca_mod.new_key()
    pair = ca_mod.KeyPair(ca_mod.sign_node(ca, key.public_key(), node, days=1, now=NOW), key)
    paths = enroll.EdgeCertPaths.in_directory(folder / node)
    paths.cert.parent.mkdir(parents=True, exist_ok=True)
    for path, data in ((paths.ca, ca.cert_pem), (paths.cert, pair.cert_pem),
                       (paths.key, pair.key_pem)):  # fmt: skip
        path.write_bytes(data)
    return paths


def server_context(
    ca: ca_mod.KeyPair, *, ips: tuple[str, ...] = (HOST,), dns: tuple[str, ...] = ()
) -> ssl.SSLContext:
    """cloudhub's: a certificate from `ca` for `ips` and `dns`, client certificates from
    `ca` required."""
    server = ca_mod.generate_server_cert(ca, ips=list(ips), dns_names=list(dns), now=NOW)
    return tls.server_context(ca_pem=ca.cert_pem, cert=server.cert_pem, key=server.key_pem)


def client_cn(credentials: nodetls.NodeTLS, server_ctx: ssl.SSLContext) -> str:
    """Handshake a connection of `credentials` with a server of `server_ctx` in memory;
    the common name of the client certificate the server saw."""
    server = handshake(*credentials.wrap(server_side=False, server_hostname=HOST), server_ctx)
    peer: dict[str, Any] = server.getpeercert() or {}
    return str(next(v for rdn in peer["subject"] for k, v in rdn if k == "commonName"))


@pytest.fixture(scope="module")
def ca() -> ca_mod.KeyPair:
    return ca_mod.generate_ca(NOW)


def test_nodes_of_one_ca_share_a_context_and_each_connection_presents_its_own_node(
    ca: ca_mod.KeyPair, tmp_path: Path
) -> None:
    contexts = nodetls.Contexts()
    node_a = contexts.node("node-a", write_node(tmp_path, ca, "node-a"))
    node_b = contexts.node("node-b", write_node(tmp_path, ca, "node-b"))
    assert node_a.context is node_b.context and len(contexts) == 1
    first = node_a.wrap(server_side=False, server_hostname=HOST)
    second = node_b.wrap(server_side=False, server_hostname=HOST)  # before either handshakes
    server = server_context(ca)
    for made, node in ((first, "node-a"), (second, "node-b")):
        peer = handshake(*made, server).getpeercert() or {}
        assert (("commonName", f"system:node:{node}"),) in peer["subject"]


def test_nodes_of_another_ca_get_a_context_of_their_own(ca: ca_mod.KeyPair, tmp_path: Path) -> None:
    other = ca_mod.generate_ca(NOW)
    contexts = nodetls.Contexts()
    nodes = [contexts.node(name, write_node(tmp_path, auth, name))
             for name, auth in (("n-1", ca), ("n-2", other), ("n-3", ca))]  # fmt: skip
    assert len(contexts) == 2
    assert nodes[0].context is nodes[2].context is not nodes[1].context
    assert client_cn(nodes[1], server_context(other)) == "system:node:n-2"


def test_a_nodes_files_are_read_once_when_it_is_set_up(ca: ca_mod.KeyPair, tmp_path: Path) -> None:
    paths = write_node(tmp_path, ca, "node-a")
    credentials = nodetls.Contexts().node("node-a", paths)
    for path in (paths.ca, paths.cert, paths.key):
        path.unlink()
    assert client_cn(credentials, server_context(ca)) == "system:node:node-a"
    assert client_cn(credentials, server_context(ca)) == "system:node:node-a"


def test_a_key_that_does_not_match_the_certificate_is_refused_at_set_up(
    ca: ca_mod.KeyPair, tmp_path: Path
) -> None:
    paths = write_node(tmp_path, ca, "node-a")
    paths.key.write_bytes(write_node(tmp_path, ca, "node-b").key.read_bytes())
    with pytest.raises(ValueError, match="the key does not match the certificate"):
        nodetls.Contexts().node("node-a", paths)


def test_missing_files_are_refused_at_set_up(ca: ca_mod.KeyPair, tmp_path: Path) -> None:
    paths = write_node(tmp_path, ca, "node-a")
    paths.key.unlink()
    with pytest.raises(FileNotFoundError):
        nodetls.Contexts().node("node-a", paths)


# Against a server on a thread of its own.


@contextmanager
def tls_server(context: ssl.SSLContext | None) -> Iterator[tuple[int, threading.Event]]:
    """A server on 127.0.0.1 that handshakes with each connection in turn (the standard
    library's, on a thread), or with `context` None says nothing until the client goes;
    yields its port and an event set when a client closed a connection it did not answer."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.05)  # how soon the thread sees `stop`
    stop, ended = threading.Event(), threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(WAIT)
            with conn, contextlib.suppress(OSError):
                if context is None:  # the client's hello, unanswered, until it goes
                    with contextlib.suppress(ConnectionResetError):
                        while conn.recv(4096):
                            pass
                    ended.set()  # not on a timeout: the client closed the connection
                else:  # the handshake fails (the tests' point), the connection is closed
                    with context.wrap_socket(conn, server_side=True):
                        pass

    thread = threading.Thread(target=serve, name="tls-server", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), ended
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        listener.close()


class _NoHandler:
    """The websocket owner: never reached, as these handshakes fail."""

    def on_open(self, conn: object) -> None:
        raise AssertionError("opened")

    def on_frame(self, conn: object, data: bytes) -> float:
        raise AssertionError("a frame")

    def on_frames_handled(self, conn: object) -> None:
        raise AssertionError("frames")

    def on_close(self, conn: object) -> None:
        raise AssertionError("closed")


def connect(
    credentials: nodetls.NodeTLS, port: int, *, host: str = HOST, timeout: float = WAIT,
    workers: tlslayer.HandshakeWorkers | None = None,
) -> None:  # fmt: skip
    async def run() -> None:
        await nodetls.connect(
            _NoHandler(), f"wss://{host}:{port}/e632aba927ea4ac2b575ec1603d56f10/x/events",
            credentials=credentials, headers={}, max_size=1 << 20, timeout=timeout,
            handshake_workers=workers,
        )  # fmt: skip

    asyncio.run(run())


class Recorded(nodetls.NodeTLS):
    """A node whose connections say on which threads their handshake steps ran."""

    __slots__ = ("made",)

    def __init__(self, credentials: nodetls.NodeTLS) -> None:
        super().__init__(credentials.node, credentials.context, credentials.credentials)
        self.made: list[Recording] = []  # the connections' TLS objects

    def wrap(self, *, server_side: bool, server_hostname: str | None) -> Any:
        inner, incoming, outgoing = super().wrap(
            server_side=server_side, server_hostname=server_hostname
        )
        self.made.append(Recording(inner))
        return self.made[-1], incoming, outgoing


@pytest.mark.integration
def test_with_handshake_workers_the_handshake_runs_on_them(
    ca: ca_mod.KeyPair, tmp_path: Path, workers: tlslayer.HandshakeWorkers
) -> None:
    credentials = Recorded(nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a")))
    with (
        tls_server(server_context(ca_mod.generate_ca(NOW))) as (port, _),
        pytest.raises(nodetls.HandshakeError, match="certificate verify failed"),
    ):
        connect(credentials, port, workers=workers)
    threads = credentials.made[0].threads
    assert threads and all(name.startswith("beehive-tls-handshake") for name in threads)


def tls11_server(ca: ca_mod.KeyPair) -> ssl.SSLContext:
    """A server that speaks TLS 1.1 only (a client that allows it connects: see
    tests/modules/hub/test_pyopenssl.py)."""
    context = server_context(ca)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated in ssl: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    return context


@pytest.mark.integration
@pytest.mark.parametrize(
    ("host", "server", "verify", "words"),
    [
        pytest.param(HOST, lambda ca: server_context(ca_mod.generate_ca(NOW)), True,
                     "certificate verify failed: certificate signature failure",
                     id="a server of another CA"),
        pytest.param(HOST, lambda ca: server_context(ca, ips=("127.0.0.2",), dns=("localhost",)),
                     True, "IP address mismatch, certificate is not valid for '127.0.0.1'"
                     " (it names IP 127.0.0.2, DNS localhost)", id="an IP address not named"),
        pytest.param("localhost", lambda ca: server_context(ca, ips=(HOST,), dns=("cloud.example",)),
                     True, "Hostname mismatch, certificate is not valid for 'localhost'"
                     " (it names IP 127.0.0.1, DNS cloud.example)", id="a DNS name not named"),
        pytest.param(HOST, tls11_server, False, "PROTOCOL_VERSION", id="a TLS 1.1 server"),
    ],
)  # fmt: skip
def test_a_server_that_does_not_pass_fails_the_handshake_naming_the_node_and_why(
    ca: ca_mod.KeyPair, tmp_path: Path, host: str, server: Any, verify: bool, words: str
) -> None:
    credentials = nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a"))
    with (
        tls_server(server(ca)) as (port, _),
        pytest.raises(nodetls.HandshakeError) as failed,
    ):
        connect(credentials, port, host=host)
    assert isinstance(failed.value.reason, ssl.SSLError)
    assert isinstance(failed.value.reason, ssl.SSLCertVerificationError) is verify
    assert str(failed.value).startswith(f"node node-a: TLS handshake with {host}:{port} failed:")
    assert words in str(failed.value)


@pytest.mark.integration
def test_a_server_that_never_answers_is_given_up_at_the_timeout(
    ca: ca_mod.KeyPair, tmp_path: Path, workers: tlslayer.HandshakeWorkers
) -> None:
    credentials = nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a"))
    with tls_server(None) as (port, ended):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect(credentials, port, timeout=0.5, workers=workers)
        assert time.monotonic() - started >= 0.5
        assert ended.wait(WAIT)  # the client closed its socket


@pytest.mark.integration
def test_a_fleet_node_that_cannot_verify_the_cloud_never_connects_and_logs_why(
    ca: ca_mod.KeyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="modules.fleet")
    write_node(tmp_path / "certs", ca, "fleet-0")
    with tls_server(server_context(ca_mod.generate_ca(NOW))) as (port, _):
        options = FleetOptions(cloud=f"{HOST}:{port}", nodes=1, certs=tmp_path / "certs",
                               reconnect_max=0.2)  # fmt: skip
        fleet = FleetThread(options)
        try:
            assert eventually(lambda: fleet.counter("connect_failures") >= 2, timeout=WAIT)
            assert fleet.counter("connects") == 0
        finally:
            fleet.stop()
    failures = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
    assert failures and all(
        m.startswith(f"node fleet-0: TLS handshake with {HOST}:{port} failed:")
        and "certificate verify failed" in m
        for m in failures
    )
