"""TLS handshake micro-benchmark: what one connection of a fleet node costs on the client
side, with Python's ssl module as the fleet used it and with pyOpenSSL as it does now,
and what the handshake costs the server; and what an idle connection holds in memory.

Run: python bench/handshake_bench.py [-n 500] [--idle 500]

Everything is in memory: no sockets, the client on the main thread and the server on a
thread of its own (`ServerThread`), taking turns, the bytes passed between their memory
BIOs; each side's CPU time is counted while it runs (time.thread_time around its calls:
what a connection costs, whatever else runs on the machine). The pairs of client and
server take turns too. The handshakes are full mutual-TLS ones (TLS 1.3, no resumption:
cloudhub issues no tickets), each node with its own certificate from one CA, the
server's certificate for 127.0.0.1 and checked for it. Clients:

- ``ssl``: the fleet before, one `ssl.SSLContext` per CA (`modules.certs.tls.client_context`)
  and per connection `load_cert_chain` of the node's PEM files, `wrap_bio`, the handshake.
- ``pyOpenSSL``: the fleet now (`modules.fleet.nodetls`, `modules.hub.pyopenssl`): each
  node's certificate and key parsed once (`Contexts.node`, not counted), per connection
  the SSL object with them set, the server's address to check, the handshake.

Servers: cloudhub's (`modules.certs.tls.server_context`, ssl on the system's OpenSSL),
and, to compare the libraries alone, the same settings on pyOpenSSL (no tickets: OpenSSL
there sends none with SSL_OP_NO_TICKET and no session cache either).

``--idle N`` (0: skip) measures, each in a process of its own, N idle client connections
of each kind after their handshake and one request and answer (as the websocket upgrade),
the server's side dropped: the growth of the process's RSS and of the C heap in use
(glibc's mallinfo2) per connection, and for pyOpenSSL what each node's parsed certificate
and key hold (kept for the node's life, where ssl parsed them into each connection).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import queue
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from OpenSSL import SSL, crypto

from modules.certs import ca as ca_mod
from modules.certs import enroll, tls
from modules.fleet import nodetls
from modules.hub import pyopenssl, tlslayer

HOST = "127.0.0.1"
NOW = datetime.datetime.now(datetime.UTC)
NODES = 16  # nodes whose connections take turns in the timed runs
PAIRS = [("ssl", "ssl"), ("pyOpenSSL", "ssl"), ("ssl", "pyOpenSSL"), ("pyOpenSSL", "pyOpenSSL")]


class Side:
    """One end of an in-memory handshake: a step, and its bytes in and out."""

    def __init__(
        self, step: Callable[[], None], want: type[BaseException], put: Callable[[bytes], Any],
        take: Callable[[], bytes],
    ) -> None:  # fmt: skip
        self.step, self.want, self.put, self.take = step, want, put, take
        self.done = False
        self.seconds = 0.0  # spent in this side's calls

    def turn(self, data: bytes) -> bytes:
        started = time.thread_time()
        if data:
            self.put(data)
        if not self.done:
            try:
                self.step()
                self.done = True
            except self.want:
                pass
        out = self.take()
        self.seconds += time.thread_time() - started
        return out


class Setup:
    """A CA, cloudhub's certificate, and `nodes` nodes' files in a temporary folder."""

    def __init__(self, folder: Path, nodes: int) -> None:
        self.ca = ca_mod.generate_ca(NOW)
        server = ca_mod.generate_server_cert(self.ca, ips=[HOST], dns_names=[], now=NOW)
        self.server = server
        self.paths = []
        for index in range(nodes):
            key = ca_mod.new_key()
            cert = ca_mod.sign_node(self.ca, key.public_key(), f"n-{index}", days=1, now=NOW)
            pair = ca_mod.KeyPair(cert, key)
            paths = enroll.EdgeCertPaths.in_directory(folder / f"n-{index}")
            paths.cert.parent.mkdir(parents=True)
            for path, data in ((paths.ca, self.ca.cert_pem), (paths.cert, pair.cert_pem),
                               (paths.key, pair.key_pem)):  # fmt: skip
                path.write_bytes(data)
            self.paths.append(paths)
        self.ssl_client = tls.client_context(ca_pem=self.ca.cert_pem)
        self.ssl_server = tls.server_context(ca_pem=self.ca.cert_pem, cert=server.cert_pem,
                                             key=server.key_pem)  # fmt: skip
        self.openssl_server = _openssl_server(self.ca, server)
        contexts = nodetls.Contexts()
        self.nodes = [contexts.node(f"n-{i}", paths) for i, paths in enumerate(self.paths)]

    def ssl_client_side(self, index: int) -> tuple[Side, ssl.SSLObject]:
        started = time.thread_time()
        paths = self.paths[index % len(self.paths)]
        self.ssl_client.load_cert_chain(paths.cert, paths.key)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = self.ssl_client.wrap_bio(incoming, outgoing, server_hostname=HOST)
        side = Side(sslobj.do_handshake, ssl.SSLWantReadError, incoming.write, outgoing.read)
        side.seconds = time.thread_time() - started
        return side, sslobj

    def openssl_client_side(self, index: int) -> tuple[Side, Any]:
        started = time.thread_time()
        node = self.nodes[index % len(self.nodes)]
        tls_object, incoming, outgoing = node.wrap(server_side=False, server_hostname=HOST)
        side = Side(tls_object.do_handshake, ssl.SSLWantReadError, incoming.write, outgoing.read)
        side.seconds = time.thread_time() - started
        return side, (tls_object, incoming, outgoing)

    def ssl_server_side(self) -> tuple[Side, ssl.SSLObject]:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = self.ssl_server.wrap_bio(incoming, outgoing, server_side=True)
        return Side(
            sslobj.do_handshake, ssl.SSLWantReadError, incoming.write, outgoing.read
        ), sslobj

    def openssl_server_side(self) -> tuple[Side, SSL.Connection]:
        conn = SSL.Connection(self.openssl_server, None)
        conn.set_accept_state()

        def take() -> bytes:
            try:
                return conn.bio_read(65536)
            except SSL.WantReadError:
                return b""

        return Side(conn.do_handshake, SSL.WantReadError, conn.bio_write, take), conn


def _openssl_server(ca: ca_mod.KeyPair, server: ca_mod.KeyPair) -> SSL.Context:
    """cloudhub's settings on pyOpenSSL: TLS 1.2+, its TLS 1.2 suites, a client
    certificate from the CA required, no tickets."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(tls.TLS12_CIPHERS.encode())
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(ca.cert))
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    context.use_certificate(server.cert)
    context.use_privatekey(server.key)
    context.set_options(SSL.OP_NO_TICKET)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return context


class ServerThread:
    """Where the server's side runs: a thread of its own, as cloudhub runs in a process of
    its own, so that each side has a core and its caches to itself (on one thread, a
    client of one library and a server of the other evict each other's code: the ssl
    server measured 7 % dearer with the pyOpenSSL client than with ssl's there, 10 %
    cheaper here)."""

    def __init__(self) -> None:
        self._asked: queue.Queue[tuple[Side, bytes] | None] = queue.Queue()  # turns to take
        self._answers: queue.Queue[bytes] = queue.Queue()  # what each turn wrote
        self._thread = threading.Thread(target=self._run, name="server", daemon=True)
        self._thread.start()

    def turn(self, side: Side, data: bytes) -> bytes:
        self._asked.put((side, data))
        return self._answers.get()

    def close(self) -> None:
        self._asked.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (asked := self._asked.get()) is not None:
            side, data = asked
            self._answers.put(side.turn(data))


def handshake(client: Side, server: Side, on: ServerThread) -> None:
    data = b""
    for _ in range(10):
        data = on.turn(server, client.turn(data))
        if client.done and server.done:
            if data:
                client.turn(data)
            return
    raise AssertionError("no end to the handshake")


def timed(setup: Setup, on: ServerThread, count: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Milliseconds per handshake for each pair of `PAIRS`: the client's (object and chain
    set up included), the server's. The pairs take turns, so that what else the machine
    does weighs on each alike."""
    seconds = {pair: [0.0, 0.0] for pair in PAIRS}
    for index in range(count):
        for pair in PAIRS:
            client_kind, server_kind = pair
            if client_kind == "ssl":
                client, _ = setup.ssl_client_side(index)
            else:
                client, _ = setup.openssl_client_side(index)
            if server_kind == "ssl":
                server, _ = setup.ssl_server_side()
            else:
                server, _ = setup.openssl_server_side()
            handshake(client, server, on)
            seconds[pair][0] += client.seconds
            seconds[pair][1] += server.seconds
    return {pair: (c / count * 1e3, s / count * 1e3) for pair, (c, s) in seconds.items()}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


def _memory() -> tuple[int, int]:
    """(RSS, C heap bytes in use), after a collection and giving freed memory back."""
    gc.collect()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc_trim(0)
    libc.mallinfo2.restype = _MallInfo2
    return psutil.Process().memory_info().rss, int(libc.mallinfo2().uordblks)


def idle(kind: str, count: int) -> dict[str, float]:
    """In this process: KiB per idle client connection of `kind`, and for pyOpenSSL per
    node's parsed certificate and key."""
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp), count)
        if kind == "pyOpenSSL":  # the nodes again, measured, in place of the first ones
            first = setup.nodes
            before = _memory()
            contexts = nodetls.Contexts()
            setup.nodes = [contexts.node(f"n-{i}", paths) for i, paths in enumerate(setup.paths)]
            rss, heap = (b - a for a, b in zip(before, _memory(), strict=True))
            result["node_rss"], result["node_heap"] = rss / count / 1024, heap / count / 1024
            del first
        on = ServerThread()
        for index in range(20):  # warm up: what the library allocates once
            _idle_connection(setup, on, kind, index)
        before = _memory()
        kept = [_idle_connection(setup, on, kind, index) for index in range(count)]
        rss, heap = (b - a for a, b in zip(before, _memory(), strict=True))
        result["rss"], result["heap"] = rss / count / 1024, heap / count / 1024
        assert len(kept) == count
        on.close()
    return result


def _idle_connection(setup: Setup, on: ServerThread, kind: str, index: int) -> Any:
    """A client connection of `kind` after its handshake, a request and its answer."""
    client_tls: tlslayer.TLSObject
    if kind == "ssl":
        client, client_tls = setup.ssl_client_side(index)
        kept: Any = client_tls
    else:
        client, kept = setup.openssl_client_side(index)
        client_tls = kept[0]
    server, server_tls = setup.ssl_server_side()
    handshake(client, server, on)
    request, answer = b"GET /events HTTP/1.1\r\n" + b"x" * 180, b"HTTP/1.1 101\r\n" + b"y" * 280
    client_tls.write(request)
    server.turn(client.take())
    assert server_tls.read(1000) == request
    server_tls.write(answer)
    client.put(server.take())
    assert client_tls.read(1000) == answer
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="handshakes per pair (500)")
    parser.add_argument("--idle", type=int, default=500, help="idle connections (0: skip)")
    parser.add_argument("--idle-kind", help=argparse.SUPPRESS)  # the measuring child
    args = parser.parse_args()
    if args.idle_kind:
        print(json.dumps(idle(args.idle_kind, args.idle)))
        return
    print(f"ssl: {ssl.OPENSSL_VERSION}; pyOpenSSL: {pyopenssl.openssl_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp), NODES)
        on = ServerThread()
        timed(setup, on, 20)  # warm up
        results = timed(setup, on, args.n)
        on.close()
    for (client_kind, server_kind), (client_ms, server_ms) in results.items():
        print(
            f"client {client_kind:9} server {server_kind:9}: client {client_ms:.3f} ms"
            f" per connection (chain set + handshake), server {server_ms:.3f} ms"
        )
    if args.idle:
        print(f"{args.idle} idle client connections, each in a process of its own:")
        for kind in ("ssl", "pyOpenSSL"):
            out = subprocess.run(
                [sys.executable, __file__, "--idle", str(args.idle), "--idle-kind", kind],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            got = json.loads(out.strip().splitlines()[-1])
            line = (
                f"  {kind:9}: {got['rss']:.1f} KiB RSS, {got['heap']:.1f} KiB C heap per connection"
            )
            if "node_rss" in got:
                line += (f"; each node's parsed certificate and key {got['node_rss']:.1f} KiB RSS,"
                         f" {got['node_heap']:.1f} KiB C heap")  # fmt: skip
            print(line)


if __name__ == "__main__":
    main()
