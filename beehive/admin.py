"""The admin endpoint: a running hive answers `beehive debug` over a local socket.

One JSON request per connection, one JSON line back::

    -> {"cmd": "peek", "args": {"module": "cloudhub", "limit": 5}}
    <- {"ok": true, "result": [...]}          or {"ok": false, "error": "..."}

By default it listens on a unix socket in a per-user 0700 directory, the socket
itself 0600, so only the owner can inspect or poke the process. Commands are
plain functions; applications add their own with `AdminServer.register`
(cloudhub adds ``nodes``). Every message a command returns goes through the
hive's message redactor (`Hive.show`), so what the application hides (secret
values) never leaves the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beehive import codec, errors
from beehive.hive import Hive
from beehive.message import Message

log = logging.getLogger("beehive.admin")

Command = Callable[..., Any]
MAX_REQUEST = 4 * 1024 * 1024  # bytes; `debug send` may carry a large content


class AdminServer:
    """Serves admin commands for one hive at one address (see the module docstring)."""

    def __init__(self, hive: Hive, address: str) -> None:
        self.hive = hive
        self.address = address  # unix:///path or tcp://host:port
        self._commands: dict[str, Command] = {}
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None
        self._socket_path: Path | None = None  # unix socket file to remove on stop
        for name, func in _builtin_commands(hive).items():
            self.register(name, func)

    def register(self, name: str, func: Command) -> None:
        """Add a command; its keyword arguments come from the request's ``args``."""
        self._commands[name] = func

    def start(self) -> None:
        """Bind and serve in a background thread.

        Raises:
            AdminError: the address is in use by a live process, or cannot be bound.
        """
        handler = _handler_class(self)
        try:
            if self.address.startswith("unix://"):
                self._server = self._bind_unix(Path(self.address[len("unix://") :]), handler)
            else:
                host, _, port = self.address[len("tcp://") :].rpartition(":")
                self._server = _TCPServer((host.strip("[]"), int(port)), handler)
        except OSError as exc:
            raise errors.AdminError(self.address, f"cannot listen: {exc}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="beehive-admin", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()

    def _bind_unix(self, path: Path, handler: type[socketserver.BaseRequestHandler]) -> _UnixServer:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists():
            if _is_live(path):
                raise errors.AdminError(self.address, "another process is already serving here")
            path.unlink()
        server = _UnixServer(str(path), handler)
        os.chmod(path, 0o600)
        self._socket_path = path
        return server

    def dispatch(self, request: Any) -> dict[str, Any]:
        """Run one request; never raises (errors become ``{"ok": false}``)."""
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'expected {"cmd": NAME, "args": {...}}'}
        commands = {**self.hive.commands, **self._commands}
        func = commands.get(request["cmd"])
        if func is None:
            known = ", ".join(sorted(commands))
            return {"ok": False, "error": f"unknown command {request['cmd']!r} (known: {known})"}
        args = request.get("args") or {}
        try:
            return {"ok": True, "result": func(**args)}
        except (errors.BeehiveError, TypeError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("admin command %s failed", request["cmd"])
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


class AdminClient:
    """Talks to an `AdminServer`; used by `beehive debug`."""

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        """Run a command and return its result.

        Raises:
            AdminError: nothing listens at the address, or the command failed.
        """
        payload = json.dumps({"cmd": cmd, "args": args}).encode() + b"\n"
        try:
            with self._connect() as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                data = _read_all(sock)
        except (FileNotFoundError, ConnectionRefusedError):
            raise errors.AdminError(
                self.address, "nothing is running here (start it with `beehive run CONFIG`)"
            ) from None
        except OSError as exc:
            raise errors.AdminError(self.address, f"cannot connect: {exc}") from None
        try:
            reply = json.loads(data)
        except ValueError:
            raise errors.AdminError(self.address, f"bad reply: {errors.excerpt(data)}") from None
        if not reply.get("ok"):
            raise errors.AdminError(self.address, str(reply.get("error")))
        return reply.get("result")

    def _connect(self) -> socket.socket:
        if self.address.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.address[len("unix://") :])
            except OSError:
                sock.close()
                raise
            return sock
        if self.address.startswith("tcp://"):
            host, _, port = self.address[len("tcp://") :].rpartition(":")
            return socket.create_connection((host.strip("[]"), int(port)), timeout=self.timeout)
        raise errors.AdminError(self.address, "expected unix://PATH or tcp://HOST:PORT")


def message_json(message: Message) -> dict[str, Any]:
    """A message as the JSON object KubeEdge would put on the wire."""
    return codec.to_json(message)


def _builtin_commands(hive: Hive) -> dict[str, Command]:
    def modules() -> list[dict[str, Any]]:
        return [dataclasses.asdict(info) for info in hive.modules()]

    def peek(module: str, limit: int = 10) -> list[dict[str, Any]]:
        return [
            {"age": round(age, 3), "message": hive.show(msg)}
            for msg, age in hive.peek(module, int(limit))
        ]

    def deadletters(limit: int = 50) -> dict[str, Any]:
        letters = hive.dead_letters.recent(int(limit))
        return {
            "total": hive.dead_letters.total,
            "letters": [
                {
                    "at": d.at,
                    "module": d.module,
                    "reason": d.reason,
                    "message": hive.show(d.message),
                }
                for d in letters
            ],
        }

    def send(module: str, message: Any, sync: bool = False, timeout: float = 5.0) -> Any:
        msg = codec.from_json(message, json.dumps(message))
        if sync:
            return hive.show(hive.send_sync(module, msg, timeout=float(timeout)))
        hive.send(module, msg)
        return {"sent": msg.msg_id}

    return {
        "modules": modules,
        "groups": hive.groups,
        "peek": peek,
        "deadletters": deadletters,
        "send": send,
        "ping": lambda: {"pid": os.getpid()},
    }


def _handler_class(server: AdminServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            raw = self.rfile.readline(MAX_REQUEST)
            try:
                request = json.loads(raw)
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "request is not JSON"}
            else:
                reply = server.dispatch(request)
            self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")

    return Handler


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _is_live(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
