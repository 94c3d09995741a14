"""TLS over memory BIOs (`tlslayer.TLSLayer`) on real sockets on 127.0.0.1: our client
and the standard library's against our server, handshakes on the loop and on worker
threads, the certificate checks, the handshake deadline, and closes.

Each test runs its own loop, bounds every wait by `WAIT` and cuts what it opened.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from modules.certs import ca as ca_mod
from modules.certs import tls
from modules.hub import tlslayer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

WAIT = 5.0
HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)


class Certs:
    def __init__(self, folder: Path) -> None:
        ca = ca_mod.generate_ca(NOW)
        server = ca_mod.generate_server_cert(ca, ips=[HOST], dns_names=[], now=NOW)
        key = ca_mod.new_key()
        node = ca_mod.KeyPair(ca_mod.sign_node(ca, key.public_key(), "n1", days=1, now=NOW), key)
        self.ca_pem = ca.cert_pem
        self.server = tls.server_context(ca_pem=ca.cert_pem, cert=server.cert_pem,
                                         key=server.key_pem)  # fmt: skip
        self.client = tls.client_context(ca_pem=ca.cert_pem, cert=node.cert_pem, key=node.key_pem)
        self.anonymous = tls.client_context(ca_pem=ca.cert_pem)  # no client certificate


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


class Echo(asyncio.Protocol):
    """Echoes what it gets; records what the transport says of the peer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer_cn = ""
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peercert") or {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        self.peer_cn = subject.get("commonName", "")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Collect(asyncio.Protocol):
    """A client app: gathers what it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.more = asyncio.Event()
        self.eof = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.more.set()

    def eof_received(self) -> bool | None:
        self.eof.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof.set()


class Server:
    def __init__(self) -> None:
        self.apps: list[Echo] = []
        self.failures: list[str] = []
        self.failed = asyncio.Event()
        self.port = 0


@asynccontextmanager
async def serving(certs: Certs, *, threads: int, timeout: float = WAIT) -> AsyncIterator[Server]:
    loop = asyncio.get_running_loop()
    server = Server()
    workers = tlslayer.HandshakeWorkers(threads) if threads else None

    def app() -> Echo:
        server.apps.append(Echo())
        return server.apps[-1]

    def failed(exc: BaseException) -> None:
        server.failures.append(tlslayer.failure_reason(exc))
        server.failed.set()

    def layer() -> tlslayer.TLSLayer:
        return tlslayer.TLSLayer(app, certs.server, server_side=True, handshake_timeout=timeout,
                                 workers=workers, on_failed=failed)  # fmt: skip

    listener = await loop.create_server(layer, HOST, 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for echo in server.apps:
            if echo.transport is not None:
                echo.transport.abort()
        if workers is not None:
            workers.close()


async def connect(port: int, context: ssl.SSLContext) -> tuple[tlslayer.TLSLayer, Collect]:
    loop = asyncio.get_running_loop()
    app = Collect()
    layer = tlslayer.TLSLayer(lambda: app, context, server_side=False, server_hostname=HOST,
                              handshake_timeout=WAIT)  # fmt: skip
    await loop.create_connection(lambda: layer, HOST, port)
    await asyncio.wait_for(layer.handshake_done, WAIT)
    return layer, app


async def until(predicate: Callable[[], bool], event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            event.clear()
            await event.wait()


@pytest.mark.parametrize("threads", [0, 2], ids=["handshake on the loop", "on two threads"])
def test_a_megabyte_each_way_passes_whole_and_the_server_knows_the_client(
    certs: Certs, threads: int
) -> None:
    async def main() -> None:
        async with serving(certs, threads=threads) as server:
            _, app = await connect(server.port, certs.client)
            payload = bytes(range(256)) * 4096  # 1 MiB, more than one TLS record and read
            assert app.transport is not None
            app.transport.write(payload)
            await until(lambda: len(app.received) >= len(payload), app.more)
            assert bytes(app.received) == payload
            assert server.apps[0].peer_cn == "system:node:n1"
            ssl_object = app.transport.get_extra_info("ssl_object")
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            app.transport.close()
            assert await asyncio.wait_for(server.apps[0].lost, WAIT) is None

    asyncio.run(main())


def test_the_standard_librarys_client_talks_to_it(certs: Certs) -> None:
    async def main() -> None:
        async with serving(certs, threads=2) as server:
            got: list[bytes] = []

            def client() -> None:
                raw = socket.create_connection((HOST, server.port), timeout=WAIT)
                with certs.client.wrap_socket(raw, server_hostname=HOST) as sock:
                    sock.sendall(b"hello over TLS")
                    got.append(sock.recv(100))

            thread = threading.Thread(target=client)
            thread.start()
            await asyncio.to_thread(thread.join, WAIT)
            assert got == [b"hello over TLS"]

    asyncio.run(main())


def test_a_client_without_a_certificate_is_refused_and_counted(certs: Certs) -> None:
    async def main() -> None:
        async with serving(certs, threads=2) as server:
            _, app = await connect(server.port, certs.anonymous)  # TLS 1.3: it finishes
            assert app.transport is not None
            app.transport.write(b"anyone there?")
            await asyncio.wait_for(app.eof.wait(), WAIT)  # the server's alert, then the end
            await asyncio.wait_for(server.failed.wait(), WAIT)
            assert server.failures == ["certificate"]
            assert server.apps == [] and app.received == b""

    asyncio.run(main())


def test_a_client_that_does_not_trust_the_server_fails_its_handshake(certs: Certs) -> None:
    async def main() -> None:
        async with serving(certs, threads=0) as server:
            stranger = ca_mod.generate_ca(NOW)
            context = tls.client_context(ca_pem=stranger.cert_pem)
            with pytest.raises(ssl.SSLCertVerificationError):
                await connect(server.port, context)
            await asyncio.wait_for(server.failed.wait(), WAIT)
            assert server.apps == []

    asyncio.run(main())


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01"], ids=["nothing", "half a hello"])
def test_a_silent_client_is_cut_at_the_handshake_deadline(certs: Certs, sent: bytes) -> None:
    async def main() -> None:
        async with serving(certs, threads=2, timeout=0.3) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(sent)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # cut, nothing said
            writer.close()
            assert server.failures == ["timeout"]

    asyncio.run(main())


def test_garbage_instead_of_a_hello_is_a_protocol_failure(certs: Certs) -> None:
    async def main() -> None:
        async with serving(certs, threads=2) as server:
            reader, writer = await asyncio.open_connection(HOST, server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.read(), WAIT)
            writer.close()
            await asyncio.wait_for(server.failed.wait(), WAIT)
            assert server.failures == ["protocol"]

    asyncio.run(main())


def test_a_server_that_closes_sends_close_notify_and_the_client_sees_the_end(
    certs: Certs,
) -> None:
    async def main() -> None:
        async with serving(certs, threads=0) as server:
            _, app = await connect(server.port, certs.client)
            assert app.transport is not None
            app.transport.write(b"x")
            await until(lambda: app.received == b"x", app.more)
            echo = server.apps[0]
            assert echo.transport is not None
            echo.transport.close()
            echo.transport.write(b"after the close: dropped")
            await asyncio.wait_for(app.eof.wait(), WAIT)
            assert app.received == b"x"
            assert app.transport.is_closing()

    asyncio.run(main())


def test_the_app_transport_reports_the_sockets_flow_control(certs: Certs) -> None:
    async def main() -> None:
        async with serving(certs, threads=0) as server:
            _, app = await connect(server.port, certs.client)
            transport: Any = app.transport
            assert transport.get_extra_info("peername")[0] == HOST
            assert transport.get_write_buffer_size() == 0 and transport.is_reading()
            transport.pause_reading()
            assert not transport.is_reading()
            transport.resume_reading()
            assert not transport.can_write_eof()
            transport.abort()
            await asyncio.wait_for(app.eof.wait(), WAIT)
            assert server.port

    asyncio.run(main())


def test_a_connection_whose_tls_object_cannot_be_made_fails_at_once(certs: Certs) -> None:
    """A client's context for a server's side: `wrap_bio` refuses. The handshake fails
    with that reason at once, not at its deadline, and the socket is cut."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        accepted: asyncio.Queue[asyncio.StreamReader] = asyncio.Queue()
        writers: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await accepted.put(reader)

        listener = await asyncio.start_server(accept, HOST, 0)
        port = listener.sockets[0].getsockname()[1]
        failures: list[BaseException] = []
        layer = tlslayer.TLSLayer(Collect, certs.client, server_side=True, handshake_timeout=60,
                                  on_failed=failures.append)  # fmt: skip
        try:
            await loop.create_connection(lambda: layer, HOST, port)
            with pytest.raises(ssl.SSLError, match="PROTOCOL_TLS_CLIENT"):
                await asyncio.wait_for(layer.handshake_done, WAIT)
            reader = await asyncio.wait_for(accepted.get(), WAIT)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # cut, nothing sent
            assert len(failures) == 1 and layer.transport is not None
            assert layer.transport.is_closing()
        finally:
            for writer in writers:
                writer.close()
            listener.close()

    asyncio.run(main())


class _HeldHandshake:
    """An `Engine` whose handshake step blocks until `release`, then succeeds."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Event()

    def wrap(self, *, server_side: bool, server_hostname: str | None) -> tuple[Any, Any, Any]:
        engine = self

        class Object:
            def do_handshake(self) -> None:
                engine.running.set()
                engine.release.wait(WAIT)

            def read(self, len: int = 1024) -> bytes:
                raise ssl.SSLWantReadError()

            def write(self, data: bytes | bytearray | memoryview) -> int:
                return len(data)

            def unwrap(self) -> object:
                return None

        class Bio:
            pending = 0

            def write(self, data: bytes, /) -> int:
                return len(data)

            def read(self, /) -> bytes:
                return b""

        return Object(), Bio(), Bio()


def test_a_handshake_given_up_while_its_step_runs_ends_quietly() -> None:
    """The client stops waiting (its timeout cancels `handshake_done`) while a worker
    still runs the step, which then succeeds: the layer cuts the socket, makes no
    connection above it, and nothing reaches the loop's exception handler."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: errors.append(context))
        writers: list[asyncio.StreamWriter] = []
        listener = await asyncio.start_server(lambda r, w: writers.append(w), HOST, 0)
        port = listener.sockets[0].getsockname()[1]
        engine, apps = _HeldHandshake(), []
        workers = tlslayer.HandshakeWorkers(1)

        def app() -> Collect:
            apps.append(Collect())
            return apps[-1]

        layer = tlslayer.TLSLayer(app, engine, server_side=False, server_hostname=HOST,
                                  handshake_timeout=60, workers=workers)  # fmt: skip
        try:
            await loop.create_connection(lambda: layer, HOST, port)
            await asyncio.wait_for(asyncio.to_thread(engine.running.wait, WAIT), WAIT)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(layer.handshake_done, 0.01)
            engine.release.set()
            async with asyncio.timeout(WAIT):
                while layer.transport is None or not layer.transport.is_closing():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)  # a callback raising would have run by now
            assert apps == [] and errors == [] and not layer.is_open
        finally:
            engine.release.set()
            workers.close()
            for writer in writers:
                writer.close()
            listener.close()

    asyncio.run(main())
