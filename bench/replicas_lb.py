"""A round-robin TCP load balancer for bench/replicas_bench.py, in front of cloudhub replicas.

Run: python bench/replicas_lb.py --port PORT --backend HOST:PORT [--backend ...]
     [--health HOST:PORT/PATH ...] [--stats PATH]

Each accepted connection goes to the next backend in turn; a backend that refuses the
connection (or does not accept within --connect-timeout) is skipped for the next one,
so edges reach a live replica while one is down. With --health (one per backend, in
the same order: its readiness URL, e.g. cloudcore's /readyz), each is asked every
--health-interval and a backend that did not answer 200 last time gets no new
connections (as a Service drops a pod that is not ready, or haproxy a failed check),
unless none is ready. Bytes are copied both ways unchanged
(TLS passes through: the edge's certificate reaches cloudhub); when either side closes,
so does the other. A stopped (SIGSTOP) replica still accepts connections (the kernel
does), so it is not skipped: its edges time out in their handshake and come back.
Counts per backend (connections, refusals, open now) go to --stats once a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
from pathlib import Path

_CHUNK = 65536


class Balancer:
    """Round robin over `backends`, skipping those that refuse."""

    def __init__(self, backends: list[tuple[str, int]], *, connect_timeout: float) -> None:
        self.backends = backends  # (host, port) of each cloudhub
        self.connect_timeout = connect_timeout  # seconds to wait for a backend's accept
        self.ready = [True] * len(backends)  # as the last health check found it
        self._next = 0  # index of the backend the next connection tries first
        names = [f"{h}:{p}" for h, p in backends]
        self.stats = {n: {"connections": 0, "refused": 0, "open": 0, "not_ready": 0}
                      for n in names}  # fmt: skip
        self.unplaced = 0  # connections no backend took

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _nodelay(writer)
        any_ready = any(self.ready)
        for _ in range(len(self.backends)):
            index = self._next
            host, port = self.backends[index]
            self._next = (self._next + 1) % len(self.backends)
            name = f"{host}:{port}"
            if any_ready and not self.ready[index]:
                self.stats[name]["not_ready"] += 1
                continue
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.connect_timeout
                )
            except (OSError, TimeoutError):
                self.stats[name]["refused"] += 1
                continue
            _nodelay(up_writer)
            self.stats[name]["connections"] += 1
            self.stats[name]["open"] += 1
            try:
                await _splice(reader, writer, up_reader, up_writer)
            finally:
                self.stats[name]["open"] -= 1
            return
        self.unplaced += 1
        writer.close()

    def dump(self) -> str:
        return json.dumps({"backends": self.stats, "unplaced": self.unplaced})


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _splice(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter,
) -> None:  # fmt: skip
    """Copy both ways until either side ends; then close both."""
    tasks = [asyncio.create_task(_copy(reader, up_writer)),
             asyncio.create_task(_copy(up_reader, writer))]  # fmt: skip
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.close()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()


async def _is_ready(url: str, timeout: float) -> bool:
    """GET HOST:PORT/PATH answered 200."""
    where, _, path = url.partition("/")
    host, _, port = where.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET /{path} HTTP/1.0\r\nHost: {where}\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), timeout)
        return status.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def check_health(balancer: Balancer, urls: list[str], interval: float) -> None:
    while True:
        found = await asyncio.gather(*(_is_ready(url, interval) for url in urls))
        balancer.ready = list(found)
        await asyncio.sleep(interval)


async def serve(args: argparse.Namespace) -> None:
    backends = []
    for spec in args.backend:
        host, _, port = spec.rpartition(":")
        backends.append((host, int(port)))
    balancer = Balancer(backends, connect_timeout=args.connect_timeout)
    if args.health and len(args.health) != len(backends):
        raise SystemExit("--health: one per --backend, in the same order")
    checks = (asyncio.create_task(check_health(balancer, args.health, args.health_interval))
              if args.health else None)  # fmt: skip
    server = await asyncio.start_server(balancer.handle, args.address, args.port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {args.address}:{args.port}", flush=True)
    async with server:
        while not stop.is_set():
            if args.stats:
                Path(args.stats).write_text(balancer.dump())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    if checks is not None:
        checks.cancel()
    if args.stats:
        Path(args.stats).write_text(balancer.dump())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", action="append", required=True, metavar="HOST:PORT")
    parser.add_argument("--connect-timeout", type=float, default=1.0, metavar="S")
    parser.add_argument("--stats", default="", metavar="PATH")
    parser.add_argument("--health", action="append", default=[], metavar="HOST:PORT/PATH")
    parser.add_argument("--health-interval", type=float, default=0.25, metavar="S")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
