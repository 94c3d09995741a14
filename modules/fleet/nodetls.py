"""The fleet's TLS: each node's certificate and key parsed once, one client context per
CA for all the nodes; and `connect`, which opens a node's websocket with them.

Input: each node's certificate files (`modules.certs.enroll.EdgeCertPaths`: the CA,
the node's certificate and key), from `modules.fleet.join`, read once when the node is
set up (`Contexts.node`). Output: websocket connections
(`modules.hub.wsconn.ClientConnection`) for `modules.fleet.session`.

Why pyOpenSSL (`modules.hub.pyopenssl`) and not Python's ssl: in a reconnect storm the
fleet's CPU goes to the client side of TLS handshakes. With ssl (the system's OpenSSL
3.0) a connection loaded its node's PEM files into the context and then handshook: 3.9
ms of CPU; on the OpenSSL 4 under pyOpenSSL it takes the node's certificate and key
already parsed (references: no parsing, no copy) and handshakes: 1.7 ms
(`bench/handshake_bench.py`). The handshake steps run on the handshake workers when
there are any (OpenSSL works without the GIL), through the same
`modules.hub.tlslayer.TLSLayer` as cloudhub's server side.

Why one context per CA: a context holds the CA and settings, and every connection holds
its context for as long as it lives; the nodes of one cloud share one, and each
connection sets its own node's certificate and key on its own SSL object, so the
context never changes once made and connections need no lock between them.

The server is checked as `modules.certs.tls.client_context` checks it, as an edge
does: TLS 1.2 at least, its TLS 1.2 suites, the certificate against the CA only, and
the name the URL gives (IP address or DNS name) against the certificate's SANs, in the
handshake.

Memory: an idle connection's OpenSSL 4 state (34 KiB) is as large as OpenSSL 3.0's was
with the node's certificate and key parsed into it, and each node now keeps those
parsed besides (7 KiB, connected or not): about 8 KiB more per connected edge.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Mapping

from OpenSSL import SSL
from websockets.uri import parse_uri

from modules.certs import enroll, tls
from modules.hub import pyopenssl, tlslayer, wsconn


class HandshakeError(ConnectionError):
    """A node's TLS handshake failed: the cloud's certificate did not verify (another
    CA, or not for the address connected to), the cloud refused the node's, or no
    common protocol version or suite."""

    def __init__(self, node: str, address: str, reason: BaseException) -> None:
        super().__init__(node, address, reason)
        self.node = node  # the node that connected
        self.address = address  # host:port it connected to
        self.reason = reason  # what failed, as raised (an `ssl.SSLError`)

    def __str__(self) -> str:
        return f"node {self.node}: TLS handshake with {self.address} failed: {self.reason}"


class NodeTLS(pyopenssl.Client):
    """One node's TLS: the fleet's context for its CA and its own certificate and key,
    parsed (a `tlslayer.Engine` for its connections)."""

    __slots__ = ("node",)

    def __init__(self, node: str, context: SSL.Context, credentials: pyopenssl.Credentials) -> None:
        """Check that the node's credentials can be presented.

        Raises:
            ValueError: the key is not the certificate's.
        """
        super().__init__(context, credentials)
        self.node = node  # the node's name


class Contexts:
    """The fleet's client contexts, one per CA (every node of one cloud shares one).
    Nodes may be set up on several threads at once."""

    def __init__(self) -> None:
        self._by_ca: dict[bytes, SSL.Context] = {}  # CA PEM -> its context
        self._lock = threading.Lock()  # guards `_by_ca`

    def __len__(self) -> int:
        return len(self._by_ca)

    def node(self, node: str, paths: enroll.EdgeCertPaths) -> NodeTLS:
        """`node`'s TLS, its files read and parsed here, once (about a millisecond:
        call it off the event loop).

        Raises:
            OSError: a file could not be read.
            ValueError: the CA, the certificate or the key is unusable, or the key is
                not the certificate's.
        """
        ca_pem = paths.ca.read_bytes()
        cert_pem, key_pem = paths.cert.read_bytes(), paths.key.read_bytes()
        credentials = pyopenssl.Credentials.from_pem(cert_pem, key_pem)
        with self._lock:
            context = self._by_ca.get(ca_pem)
            if context is None:
                context = pyopenssl.client_context(ca_pem=ca_pem, ciphers=tls.TLS12_CIPHERS)
                self._by_ca[ca_pem] = context
        return NodeTLS(node, context, credentials)


async def connect(
    handler: wsconn.Handler, uri: str, *, credentials: NodeTLS, headers: Mapping[str, str],
    max_size: int, timeout: float, close_timeout: float = 1.0,
    handshake_workers: tlslayer.HandshakeWorkers | None = None,
) -> wsconn.ClientConnection:  # fmt: skip
    """Open a websocket connection to `uri` (``wss://``) as the node of `credentials`
    (as `modules.hub.wsconn.connect`, the handshake steps on `handshake_workers` if given,
    else on the loop).

    Raises:
        HandshakeError: the TLS handshake failed (naming the node, the address and why).
        OSError: the TCP connection failed, or the server closed it in the handshake.
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

    layer = tlslayer.TLSLayer(
        make, credentials, server_side=False, server_hostname=parsed.host,
        handshake_timeout=timeout, workers=handshake_workers,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: layer, parsed.host, parsed.port)
            try:
                # Shielded: a timeout here must not cancel the layer's own future, which
                # a handshake step still on a worker sets when it ends.
                await asyncio.shield(layer.handshake_done)
            except ssl.SSLError as exc:
                raise HandshakeError(credentials.node, address, exc) from exc
            assert conn is not None
            await conn.opened
    except BaseException:
        layer.abort()
        if conn is not None:
            conn.abort()
            if not conn.opened.done():
                conn.opened.cancel()
        raise
    return conn
