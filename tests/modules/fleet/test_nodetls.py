"""The fleet's TLS (`nodetls`): one context per CA shared by the nodes, each connection
with its own node's certificate, and handshakes that fail as before, naming the node.

The handshakes of the first tests run over memory BIOs, without sockets; the others
against a TLS server on 127.0.0.1 on a thread of its own. Every wait is bounded by `WAIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import socket
import ssl
import threading
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


def server_context(ca: ca_mod.KeyPair, *, ips: tuple[str, ...] = (HOST,)) -> ssl.SSLContext:
    """cloudhub's: a certificate from `ca` for `ips`, client certificates from `ca` required."""
    server = ca_mod.generate_server_cert(ca, ips=list(ips), dns_names=[], now=NOW)
    return tls.server_context(ca_pem=ca.cert_pem, cert=server.cert_pem, key=server.key_pem)


class Client:
    """A client SSL object made as `_NodeLayer.connection_made` makes it (the node's
    chain loaded, then the object made), with its memory BIOs."""

    def __init__(self, credentials: nodetls.NodeTLS) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        credentials.load()
        self.sslobj = credentials.context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=HOST
        )

    def handshake(self, server_ctx: ssl.SSLContext) -> str:
        """Handshake with a server made from `server_ctx`, in memory; the common name of
        the client certificate the server saw."""
        s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        done: set[str] = set()
        for _ in range(10):
            for name, side in (("client", self.sslobj), ("server", server)):
                try:
                    side.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
            s_in.write(self.outgoing.read())
            self.incoming.write(s_out.read())
            if done == {"client", "server"}:
                break
        assert done == {"client", "server"}
        peer: dict[str, Any] = server.getpeercert() or {}
        return str(next(v for rdn in peer["subject"] for k, v in rdn if k == "commonName"))


@pytest.fixture(scope="module")
def ca() -> ca_mod.KeyPair:
    return ca_mod.generate_ca(NOW)


def test_each_ssl_object_keeps_the_chain_loaded_when_it_was_made(
    ca: ca_mod.KeyPair, tmp_path: Path
) -> None:
    contexts = nodetls.Contexts()
    node_a = contexts.node("node-a", write_node(tmp_path, ca, "node-a"))
    node_b = contexts.node("node-b", write_node(tmp_path, ca, "node-b"))
    assert node_a.context is node_b.context and len(contexts) == 1
    first, second = Client(node_a), Client(node_b)  # both made before either handshakes
    server = server_context(ca)
    assert first.handshake(server) == "system:node:node-a"
    assert second.handshake(server) == "system:node:node-b"


def test_nodes_of_another_ca_get_a_context_of_their_own(ca: ca_mod.KeyPair, tmp_path: Path) -> None:
    other = ca_mod.generate_ca(NOW)
    contexts = nodetls.Contexts()
    nodes = [contexts.node(name, write_node(tmp_path, auth, name))
             for name, auth in (("n-1", ca), ("n-2", other), ("n-3", ca))]  # fmt: skip
    assert len(contexts) == 2
    assert nodes[0].context is nodes[2].context is not nodes[1].context
    assert Client(nodes[1]).handshake(server_context(other)) == "system:node:n-2"


def test_a_key_that_does_not_match_the_certificate_is_refused(
    ca: ca_mod.KeyPair, tmp_path: Path
) -> None:
    paths = write_node(tmp_path, ca, "node-a")
    paths.key.write_bytes(write_node(tmp_path, ca, "node-b").key.read_bytes())
    credentials = nodetls.Contexts().node("node-a", paths)
    with pytest.raises(ssl.SSLError):
        credentials.load()


# Against a TLS server on a thread of its own.


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that handshakes with each connection in turn (the
    standard library's, on a thread); yields its port."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.05)  # how soon the thread sees `stop`
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(WAIT)
            # The handshake fails (the tests' point), the connection is closed.
            with conn, contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass

    thread = threading.Thread(target=serve, name="tls-server", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
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
    credentials: nodetls.NodeTLS, port: int, *, timeout: float = WAIT,
    workers: tlslayer.HandshakeWorkers | None = None,
) -> None:  # fmt: skip
    async def run() -> None:
        await nodetls.connect(
            _NoHandler(), f"wss://{HOST}:{port}/e632aba927ea4ac2b575ec1603d56f10/x/events",
            credentials=credentials, headers={}, max_size=1 << 20, timeout=timeout,
            handshake_workers=workers,
        )  # fmt: skip

    asyncio.run(run())


class Recorded(nodetls.NodeTLS):
    """Credentials that say on which thread they were loaded, and can be held up."""

    __slots__ = ("go", "loaded_on", "loading")

    def __init__(self, credentials: nodetls.NodeTLS) -> None:
        super().__init__(credentials.node, credentials.shared, credentials.cert, credentials.key)
        self.loaded_on = ""  # the thread that loaded the chain
        self.loading = threading.Event()  # a load started
        self.go = threading.Event()  # let the load go on
        self.go.set()

    def load(self) -> None:
        self.loaded_on = threading.current_thread().name
        self.loading.set()
        assert self.go.wait(WAIT)
        super().load()


@pytest.fixture
def workers() -> Iterator[tlslayer.HandshakeWorkers]:
    pool = tlslayer.HandshakeWorkers(2)
    yield pool
    pool.close()


@pytest.mark.integration
def test_with_handshake_workers_the_chain_is_loaded_on_one(
    ca: ca_mod.KeyPair, tmp_path: Path, workers: tlslayer.HandshakeWorkers
) -> None:
    credentials = Recorded(nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a")))
    with (
        tls_server(server_context(ca_mod.generate_ca(NOW))) as port,
        pytest.raises(nodetls.HandshakeError, match="certificate verify failed"),
    ):
        connect(credentials, port, workers=workers)
    assert credentials.loaded_on.startswith("beehive-tls-handshake")


@pytest.mark.integration
def test_a_connection_given_up_while_loading_holds_the_context_until_the_load_ends(
    ca: ca_mod.KeyPair, tmp_path: Path, workers: tlslayer.HandshakeWorkers
) -> None:
    """Another node's load must not run beside one still running on a worker (as when
    a connection times out during its load)."""
    credentials = Recorded(nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a")))
    credentials.go.clear()
    lock = credentials.shared.lock
    states: list[tuple[bool, bool]] = []  # (the attempt ended, the lock is held)

    async def run(port: int) -> None:
        attempt = asyncio.create_task(
            nodetls.connect(
                _NoHandler(), f"wss://{HOST}:{port}/p/node-a/events", credentials=credentials,
                headers={}, max_size=1 << 20, timeout=WAIT, handshake_workers=workers,
            )
        )  # fmt: skip
        assert await asyncio.to_thread(credentials.loading.wait, WAIT)
        attempt.cancel()
        for _ in range(5):  # turns of the loop: the cancellation reaches the attempt
            await asyncio.sleep(0)
        states.append((attempt.done(), lock.locked()))
        credentials.go.set()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        states.append((attempt.done(), lock.locked()))

    with tls_server(server_context(ca)) as port:
        asyncio.run(run(port))
    assert states == [(False, True), (True, False)]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("server_ips", "other_ca", "words"),
    [
        pytest.param((HOST,), True, "certificate verify failed", id="a server of another CA"),
        pytest.param(("127.0.0.2",), False, "IP address mismatch", id="a server for another address"),
    ],
)  # fmt: skip
def test_a_server_certificate_that_does_not_verify_fails_the_handshake_naming_the_node(
    ca: ca_mod.KeyPair, tmp_path: Path, server_ips: tuple[str, ...], other_ca: bool, words: str
) -> None:
    credentials = nodetls.Contexts().node("node-a", write_node(tmp_path, ca, "node-a"))
    server_ca = ca_mod.generate_ca(NOW) if other_ca else ca
    with (
        tls_server(server_context(server_ca, ips=server_ips)) as port,
        pytest.raises(nodetls.HandshakeError) as failed,
    ):
        connect(credentials, port)
    assert isinstance(failed.value.reason, ssl.SSLCertVerificationError)
    assert str(failed.value).startswith(f"node node-a: TLS handshake with {HOST}:{port} failed:")
    assert words in str(failed.value)


@pytest.mark.integration
def test_certificate_files_gone_since_the_join_fail_the_handshake_naming_the_node(
    ca: ca_mod.KeyPair, tmp_path: Path
) -> None:
    paths = write_node(tmp_path, ca, "node-a")
    credentials = nodetls.Contexts().node("node-a", paths)
    paths.key.unlink()
    with (
        tls_server(server_context(ca)) as port,
        pytest.raises(nodetls.HandshakeError, match="node node-a: TLS handshake") as failed,
    ):
        connect(credentials, port)
    assert isinstance(failed.value.reason, FileNotFoundError)


@pytest.mark.integration
def test_a_fleet_node_that_cannot_verify_the_cloud_never_connects_and_logs_why(
    ca: ca_mod.KeyPair, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="modules.fleet")
    write_node(tmp_path / "certs", ca, "fleet-0")
    with tls_server(server_context(ca_mod.generate_ca(NOW))) as port:
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
