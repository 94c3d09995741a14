"""A tiny TLS server with `tls.server_context`, for one connection: who was the peer?"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading

from modules.certs import ca as ca_mod
from modules.certs import tls


def tls_peer_node(
    ca: ca_mod.KeyPair, client: ssl.SSLContext, *, node_id: str
) -> tuple[str | None, str | None]:
    """Connect `client` to a cloudhub-like TLS server; (peer node, check_peer reason).

    Raises:
        ssl.SSLError or ConnectionError: the handshake was refused.
    """
    now = datetime.datetime.now(datetime.UTC)
    pair = ca_mod.generate_server_cert(ca, ips=["127.0.0.1"], dns_names=[], now=now)
    context = tls.server_context(ca_pem=ca.cert_pem, cert=pair.cert_pem, key=pair.key_pem)
    result: dict[str, object] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(2)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(2)
            try:
                with context.wrap_socket(conn, server_side=True) as tls_conn:
                    der = tls_conn.getpeercert(binary_form=True)
                    result["node"] = tls.node_from_certificate(der) if der else None
                    result["reason"] = tls.check_peer(der, node_id, ca=ca.cert)
                    tls_conn.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                result["error"] = exc
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                client.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                if sock.recv(2) != b"ok":
                    raise ConnectionError("the server closed the connection")
        finally:
            thread.join(3)
    return result.get("node"), result.get("reason")  # type: ignore[return-value]
