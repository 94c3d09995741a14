"""The fleet's TLS: one client context per CA for all the nodes, each connection with
its own node's certificate; and `connect`, which opens a node's websocket over it.

Input: each node's certificate files (`modules.certs.enroll.EdgeCertPaths`: the CA,
the node's certificate and key), from `modules.fleet.join`. Output: websocket
connections (`modules.hub.wsconn.ClientConnection`) for `modules.fleet.session`.

Why one context: an `ssl.SSLContext` costs about 25 KiB in OpenSSL 3 (13 KiB bare,
the rest the CA and the node's chain), and a connection's SSL object holds its context
for as long as it lives, so a context per node was a third of an idle connected TLS
edge. A connection's SSL object copies the certificate and key its context holds when
it is made, and later loads into the context do not reach it (OpenSSL's
SSL_CTX_use_certificate(3): "The information is passed to SSL objects ssl created
from ctx with SSL_new(3) by copying, so that changes applied to ctx do not propagate
to already existing SSL objects"). So a connection loads its node's chain into the
shared context and then makes its SSL object, holding the context's lock from one to
the other (`connect`): no other node's chain can come in between, and each node
presents its own certificate. The server is checked as each node's own context
checked it: against the CA, with the host name (`modules.certs.tls.client_context`'s
settings, unchanged). The load (0.8 ms in OpenSSL 3) runs on a handshake worker when
there are any, off the loop; the workers' handshakes touch their own SSL objects only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

from websockets.uri import parse_uri

from modules.certs import enroll, tls
from modules.hub import tlslayer, wsconn


class HandshakeError(ConnectionError):
    """A node's TLS handshake failed: the cloud's certificate did not verify, the cloud
    refused the node's, or the node's own files could not be loaded."""

    def __init__(self, node: str, address: str, reason: BaseException) -> None:
        super().__init__(node, address, reason)
        self.node = node  # the node that connected
        self.address = address  # host:port it connected to
        self.reason = reason  # what failed, as raised

    def __str__(self) -> str:
        return f"node {self.node}: TLS handshake with {self.address} failed: {self.reason}"


class NodeTLS:
    """One node's credentials: the fleet's context for its CA and its own chain's files."""

    __slots__ = ("cert", "key", "node", "shared")

    def __init__(self, node: str, shared: SharedContext, cert: Path, key: Path) -> None:
        self.node = node  # the node's name
        self.shared = shared  # the context of every node with the same CA
        self.cert = cert  # the node's certificate (PEM file)
        self.key = key  # and its key

    @property
    def context(self) -> ssl.SSLContext:
        return self.shared.context

    def load(self) -> None:
        """Put this node's certificate and key into the shared context (for the next SSL
        object made from it); only while holding the shared context's `lock`.

        Raises:
            OSError: a file could not be read.
            ssl.SSLError: the certificate or key is unusable, or they do not match.
        """
        self.shared.context.load_cert_chain(self.cert, self.key)


class SharedContext:
    """A client context shared by the nodes of one CA, and who may load a chain into it."""

    __slots__ = ("context", "lock")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context  # CA, host name check, TLS 1.2+: `tls.client_context`
        # Held from a connection's load until its SSL object is made, so that no other
        # chain comes in between (and OpenSSL never loads into it from two threads).
        self.lock = asyncio.Lock()


class Contexts:
    """The fleet's client contexts, one per CA (every node of one cloud shares one)."""

    def __init__(self) -> None:
        self._by_ca: dict[bytes, SharedContext] = {}  # CA PEM -> its context

    def __len__(self) -> int:
        return len(self._by_ca)

    def node(self, node: str, paths: enroll.EdgeCertPaths) -> NodeTLS:
        """`node`'s credentials (its chain is loaded at each connection: `connect`).

        Raises:
            OSError: the CA could not be read.
            ssl.SSLError: the CA is unusable.
        """
        ca_pem = paths.ca.read_bytes()
        shared = self._by_ca.get(ca_pem)
        if shared is None:
            shared = self._by_ca[ca_pem] = SharedContext(tls.client_context(ca_pem=ca_pem))
        return NodeTLS(node, shared, paths.cert, paths.key)


class _NodeLayer(tlslayer.TLSLayer):
    """A client `TLSLayer` that makes its SSL object when told (`start`), once its node's
    chain is in the context, rather than as soon as TCP is up."""

    def __init__(
        self, app_factory: Callable[[], asyncio.Protocol], credentials: NodeTLS, *,
        server_hostname: str, handshake_timeout: float,
        workers: tlslayer.HandshakeWorkers | None,
    ) -> None:  # fmt: skip
        super().__init__(
            app_factory, credentials.context, server_side=False,
            server_hostname=server_hostname, handshake_timeout=handshake_timeout,
            workers=workers,
        )  # fmt: skip
        self._tcp: asyncio.Transport | None = None  # the socket, until `start`

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._tcp = transport  # the client speaks first: nothing comes before `start`

    def start(self) -> None:
        """The node's chain is in the context: make the SSL object (it copies the chain)
        and begin the handshake; nothing if the socket is gone meanwhile."""
        if self._tcp is not None and not self.handshake_done.done():
            super().connection_made(self._tcp)

    def cut(self) -> None:
        """Close the socket, started or not."""
        if self._tcp is not None:
            self._tcp.abort()


async def _load(credentials: NodeTLS, workers: tlslayer.HandshakeWorkers | None) -> None:
    """Load the node's chain: on a worker if there are any (OpenSSL 3 takes about 0.8 ms
    to decode a chain and its key, which would hold up every session on the loop)."""
    if workers is None:
        credentials.load()
        return
    try:
        future = asyncio.wrap_future(workers.submit(credentials.load))
    except RuntimeError as exc:  # the workers have stopped: the fleet is stopping
        raise ConnectionError("the handshake workers have stopped") from exc
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        if future.cancelled():  # by the workers' shutdown, not by our caller
            raise ConnectionError("the handshake workers have stopped") from None
        # Our caller gave up (a timeout): the load goes on on its worker, so the lock
        # stays held until it ends, lest another load run beside it.
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        raise


async def connect(
    handler: wsconn.Handler, uri: str, *, credentials: NodeTLS, headers: Mapping[str, str],
    max_size: int, timeout: float, close_timeout: float = 1.0,
    handshake_workers: tlslayer.HandshakeWorkers | None = None,
) -> wsconn.ClientConnection:  # fmt: skip
    """Open a websocket connection to `uri` (``wss://``) as the node of `credentials`
    (`modules.hub.wsconn.connect`, with the node's chain put in at the right moment).

    Raises:
        HandshakeError: the TLS handshake failed (naming the node and why).
        OSError: the TCP connection failed.
        TimeoutError: the handshakes took longer than `timeout`.
        InvalidHandshake: the server refused the upgrade.
    """
    parsed = parse_uri(uri)
    address = f"{parsed.host}:{parsed.port}"
    loop = asyncio.get_running_loop()
    conn: wsconn.ClientConnection | None = None

    def make() -> wsconn.ClientConnection:
        nonlocal conn
        conn = wsconn.ClientConnection(
            handler, uri, headers, max_size=max_size, close_timeout=close_timeout
        )
        return conn

    layer = _NodeLayer(
        make, credentials, server_hostname=parsed.host, handshake_timeout=timeout,
        workers=handshake_workers,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: layer, parsed.host, parsed.port)
            async with credentials.shared.lock:
                try:
                    await _load(credentials, handshake_workers)
                except (OSError, ssl.SSLError) as exc:
                    raise HandshakeError(credentials.node, address, exc) from exc
                layer.start()  # the SSL object copies the chain: no other comes between
            try:
                # Shielded: a timeout here must not cancel the layer's own future, which
                # a handshake step still on a worker sets when it ends.
                await asyncio.shield(layer.handshake_done)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise HandshakeError(credentials.node, address, exc) from exc
            assert conn is not None
            await conn.opened
    except BaseException:
        layer.cut()
        if conn is not None:
            conn.abort()
            if not conn.opened.done():
                conn.opened.cancel()
        raise
    return conn
