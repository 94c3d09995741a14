"""What a cloud written by hand needs: answering the edge's upgrade on a raw socket."""

from __future__ import annotations

import base64
import hashlib
import socket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def answer_upgrade(sock: socket.socket, then: bytes = b"") -> None:
    """Read the edge's upgrade request and accept it; `then` goes in the same write."""
    request = b""
    while b"\r\n\r\n" not in request:
        request += sock.recv(4096)
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                 + then)  # fmt: skip
