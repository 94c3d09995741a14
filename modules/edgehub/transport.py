"""The edge's websocket client (websocket-client, blocking, thread-safe sends).

Input: frames to write (`send`); output: frames read (`recv`), None on a read
timeout. Only this file knows `websocket`; its exceptions become
`HubConnectionError` here and never reach module code.
"""

from __future__ import annotations

import struct

import websocket

from modules.hub import errors


class ClientConnection:
    """One websocket connection to cloudhub."""

    def __init__(self, url: str, headers: dict[str, str], *, timeout: float) -> None:
        """Connect (the handshake waits at most `timeout` seconds).

        Raises:
            HubConnectionError: the connection or handshake failed.
        """
        self.url = url
        try:
            self._ws = websocket.create_connection(
                url,
                header=[f"{key}: {value}" for key, value in headers.items()],
                timeout=timeout,
                enable_multithread=True,  # sends from the module thread, reads from ours
            )
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(url, _describe(exc)) from exc

    def send(self, frame: bytes) -> None:
        """Write one text frame.

        Raises:
            HubConnectionError: the connection is broken.
        """
        try:
            self._ws.send(frame, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc

    def recv(self, timeout: float) -> bytes | None:
        """The next frame's payload, or None if none came within `timeout`.

        Raises:
            HubConnectionError: the connection was closed (with the peer's code and
                reason) or broke.
        """
        try:
            self._ws.settimeout(timeout)
            opcode, data = self._ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError) as exc:
            raise errors.HubConnectionError(self.url, _describe(exc)) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:  # our close reply has been sent
            self._ws.shutdown()  # type: ignore[no-untyped-call]
            raise errors.HubConnectionError(self.url, f"closed by the cloud: {_close_reason(data)}")
        return bytes(data)

    def close(self) -> None:
        if not self._ws.connected:
            self._ws.shutdown()  # type: ignore[no-untyped-call]
            return
        try:
            self._ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            self._ws.shutdown()  # type: ignore[no-untyped-call]


def _close_reason(data: bytes) -> str:
    if len(data) < 2:
        return "no code"
    (code,) = struct.unpack("!H", data[:2])
    return f"{code} {data[2:].decode('utf-8', 'replace')}".strip()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
