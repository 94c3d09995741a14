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
shared context in the same call, on the loop, in which its SSL object is made
(`_NodeLayer.connection_made`): no other node's chain can come in between, and each
node presents its own certificate. The server is checked as each node's own context
checked it: against the CA, with the host name (`modules.certs.tls.client_context`'s
settings, unchanged). Only the loop thread loads chains; the handshake workers touch
their own SSL objects only.
"""

from __future__ import annotations

import asyncio
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

    __slots__ = ("cert", "context", "key", "node")

    def __init__(self, node: str, context: ssl.SSLContext, cert: Path, key: Path) -> None:
        self.node = node  # the node's name
        self.context = context  # shared by every node with the same CA
        self.cert = cert  # the node's certificate (PEM file)
        self.key = key  # and its key

    def load(self) -> None:
        """Put this node's certificate and key into the shared context (for the next SSL
        object made from it, and no other).

        Raises:
            OSError: a file could not be read.
            ssl.SSLError: the certificate or key is unusable, or they do not match.
        """
        self.context.load_cert_chain(self.cert, self.key)


class Contexts:
    """The fleet's client contexts, one per CA (every node of one cloud shares one)."""

    def __init__(self) -> None:
        self._by_ca: dict[bytes, ssl.SSLContext] = {}  # CA PEM -> its context

    def __len__(self) -> int:
        return len(self._by_ca)

    def node(self, node: str, paths: enroll.EdgeCertPaths) -> NodeTLS:
        """`node`'s credentials, its chain loaded once now to check it (on the loop thread:
        the contexts are not loaded from two threads at once).

        Raises:
            OSError: a file could not be read.
            ssl.SSLError: the CA, certificate or key is unusable.
        """
        ca_pem = paths.ca.read_bytes()
        context = self._by_ca.get(ca_pem)
        if context is None:
            context = self._by_ca[ca_pem] = tls.client_context(ca_pem=ca_pem)
        credentials = NodeTLS(node, context, paths.cert, paths.key)
        credentials.load()
        return credentials


class _NodeLayer(tlslayer.TLSLayer):
    """A client `TLSLayer` whose SSL object is made with its node's chain."""

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
        self._credentials = credentials
        self.load_error: OSError | ssl.SSLError | None = None  # the chain could not be loaded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The chain goes in, and the layer makes its SSL object from the context, in one
        # call on the loop: no other connection's chain can come in between.
        assert isinstance(transport, asyncio.Transport)
        try:
            self._credentials.load()
        except (OSError, ssl.SSLError) as exc:
            self.load_error = exc
            transport.abort()  # connection_lost follows: the handshake fails
            return
        super().connection_made(transport)


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
            try:
                # Shielded: a timeout here must not cancel the layer's own future, which
                # a handshake step still on a worker sets when it ends.
                await asyncio.shield(layer.handshake_done)
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise HandshakeError(credentials.node, address, exc) from exc
            except ConnectionError as exc:
                if layer.load_error is None:
                    raise
                raise HandshakeError(credentials.node, address, layer.load_error) from exc
            assert conn is not None
            await conn.opened
    except BaseException:
        if layer.transport is not None:
            layer.transport.abort()
        if conn is not None:
            conn.abort()
            if not conn.opened.done():
                conn.opened.cancel()
        raise
    return conn
