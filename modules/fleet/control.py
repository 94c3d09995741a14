"""The fleet's control channel: one command per line on stdin, one JSON reply per line
on stdout, so a script (the end-to-end benchmark) can order faults and read records.

Commands: ``stats``; ``storm``; ``drop FRACTION``; ``dump PATH`` (arrival records,
as JSON, to a file); ``check PATH`` (a JSON file of node -> key -> resourceVersion or
null for deleted: how many hold); ``stop``. End of input stops the fleet too, so a
fleet whose parent went away does not linger.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from modules.fleet.fleet import Fleet


def start(
    fleet: Fleet, *, source: TextIO = sys.stdin, sink: TextIO = sys.stdout
) -> threading.Thread:
    """Read commands on a daemon thread and run them on the fleet's loop."""
    loop = asyncio.get_running_loop()
    thread = threading.Thread(
        target=_read, args=(fleet, loop, source, sink), name="fleet-control", daemon=True
    )
    thread.start()
    return thread


def _read(fleet: Fleet, loop: asyncio.AbstractEventLoop, source: TextIO, sink: TextIO) -> None:
    cache: dict[str, Any] = {}  # check files by path: read once
    for line in source:
        if not line.strip():
            continue
        future = asyncio.run_coroutine_threadsafe(_run(fleet, line.split(), cache), loop)
        try:
            reply = future.result(timeout=60)
        except Exception as exc:  # report any failure to the caller, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sink.write(json.dumps(reply) + "\n")
        sink.flush()
        if line.strip() == "stop":
            return
    loop.call_soon_threadsafe(fleet.stop.set)


async def _run(fleet: Fleet, words: list[str], cache: dict[str, Any]) -> dict[str, Any]:
    command, args = words[0], words[1:]
    if command == "stats":
        return fleet.summary()
    if command == "storm":
        return {"dropped": fleet.storm()}
    if command == "drop" and len(args) == 1:
        return {"dropped": fleet.drop(float(args[0]))}
    if command == "dump" and len(args) == 1:
        Path(args[0]).write_text(json.dumps(fleet.arrivals()))
        return {"written": args[0]}
    if command == "check" and len(args) == 1:
        if args[0] not in cache:
            cache[args[0]] = json.loads(Path(args[0]).read_text())
        return fleet.check(cache[args[0]])
    if command == "stop":
        fleet.stop.set()
        return {"stopping": True}
    return {"error": f"unknown command {' '.join(words)[:80]!r}"}
