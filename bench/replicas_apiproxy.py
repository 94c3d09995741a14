"""A TCP proxy between cloudcore replicas and the API server, that can cut them off.

Run: python bench/replicas_apiproxy.py --upstream HOST:PORT --route NAME=PORT [--route ...]

For bench/replicas_bench.py's api-loss scenario: each replica reaches the API server
through its own route (a listening port on 127.0.0.1; the replica's kubeconfig names
it, so TLS and the bearer token pass through unchanged), and one route at a time is
cut off, as a network fault would, while the replica itself runs on. Commands come on
stdin, one a line; each is answered with one line of JSON on stdout, with ``at``, the
monotonic clock when it was done (the same clock as the benchmark's):

- ``cut NAME MODE``: MODE ``blackhole`` closes every connection of the route (the
  client's side is reset) and accepts new ones without ever answering (a TLS handshake
  then times out); ``refuse`` closes them and stops listening (new connections are
  refused); ``stall`` closes nothing and forwards nothing, either way, on the open
  connections or on new ones (a partition: requests in flight wait on their timeouts);
- ``restore NAME``: forward again (held new connections are closed, stalled ones
  resume where they were);
- ``stats``: per route its state and counts (connections, closed by cuts, held).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import struct
import sys
import threading
import time
from typing import Any

_CHUNK = 65536
MODES = ("blackhole", "refuse", "stall")


class Route:
    """One replica's way to the API server."""

    def __init__(self, name: str, address: str, port: int, upstream: tuple[str, int]) -> None:
        self.name, self.address, self.port, self.upstream = name, address, port, upstream
        self.mode = ""  # the cut's mode, "" while forwarding
        self.flowing = asyncio.Event()  # set while bytes are forwarded (cleared by a stall)
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.held: set[asyncio.StreamWriter] = set()  # accepted while cut, never answered
        self.counts = {"connections": 0, "closed_by_cut": 0, "held": 0, "cuts": 0}

    async def listen(self) -> None:
        self.server = await asyncio.start_server(
            self.handle, self.address, self.port, backlog=256, reuse_address=True
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode in ("blackhole", "stall"):
            self.counts["held"] += 1
            self.held.add(writer)
            try:
                while self.mode and not reader.at_eof():  # nothing is answered
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(_CHUNK), 1.0)
            finally:
                self.held.discard(writer)
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        for w in (writer, up_writer):
            _nodelay(w)
        pair = (writer, up_writer)
        self.counts["connections"] += 1
        self.pairs.add(pair)
        tasks = [asyncio.create_task(self._copy(reader, up_writer)),
                 asyncio.create_task(self._copy(up_reader, writer))]  # fmt: skip
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.pairs.discard(pair)
            for task in tasks:
                task.cancel()
            for w in pair:
                w.close()

    async def _copy(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await src.read(_CHUNK):
                await self.flowing.wait()  # a stall holds what was read until restore
                dst.write(data)
                await dst.drain()

    def cut(self, mode: str) -> dict[str, Any]:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.counts["cuts"] += 1
        closed = 0
        if mode == "stall":
            self.flowing.clear()
        else:
            for client_writer, up_writer in list(self.pairs):
                _reset(client_writer)  # as a broken path shows
                up_writer.close()
                closed += 1
            self.counts["closed_by_cut"] += closed
        if mode == "refuse" and self.server is not None:
            self.server.close()  # the connections already accepted are not its business
            self.server = None
        return {"route": self.name, "mode": mode, "closed": closed}

    async def restore(self) -> dict[str, Any]:
        mode, self.mode = self.mode, ""
        self.flowing.set()
        held = len(self.held)
        for writer in list(self.held):
            _reset(writer)
        if self.server is None:
            await self.listen()
        return {"route": self.name, "was": mode, "held_closed": held, "open": len(self.pairs)}

    def stats(self) -> dict[str, Any]:
        return {"mode": self.mode, "open": len(self.pairs), **self.counts}

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in [w for pair in self.pairs for w in pair] + list(self.held):
            writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def answer(routes: dict[str, Route], line: str) -> dict[str, Any]:
    words = line.split()
    try:
        if words[:1] == ["cut"] and len(words) == 3:
            reply = routes[words[1]].cut(words[2])
        elif words[:1] == ["restore"] and len(words) == 2:
            reply = await routes[words[1]].restore()
        elif words == ["stats"]:
            reply = {name: r.stats() for name, r in routes.items()}
        else:
            reply = {"error": f"unknown command {line!r}"}
    except (KeyError, ValueError) as exc:
        reply = {"error": str(exc)}
    return {**reply, "at": time.monotonic()}


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.upstream.rpartition(":")
    routes = {}
    for spec in args.route:
        name, _, listen = spec.partition("=")
        routes[name] = Route(name, args.address, int(listen), (host, int(port)))
    for route in routes.values():
        await route.listen()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:  # commands until stdin closes
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read_stdin, name="commands", daemon=True).start()
    print(f"routes {sorted(routes)} to {args.upstream}", file=sys.stderr, flush=True)
    while line := await lines.get():
        print(json.dumps(await answer(routes, line)), flush=True)
    for route in routes.values():
        route.close()
    await asyncio.sleep(0.1)  # the connections' tasks end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, metavar="HOST:PORT")
    parser.add_argument("--route", action="append", required=True, metavar="NAME=PORT")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
