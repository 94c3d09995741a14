"""The fleet of bench/replicas_bench.py: ``beehive fleet`` with the records a failover needs.

Run: python bench/replicas_fleet.py [--reconnect-initial S] [--reconnect-max S]
     [--connect-timeout S] FLEET-OPTIONS...   (as ``beehive fleet``, with --control)

The fleet (modules/fleet) counts a delivery that is not newer than what a node holds
as a duplicate, keeps only each object's newest version, and reconnects after 0.5 s
backoff capped at 10 s. For a failover the benchmark needs more, so this wraps the
fleet's session in place (nothing under modules/ changes):
- the reconnect backoff and the connect timeout from the command line;
- every session's open and close, with the monotonic time (``events``);
- every delivery that changed what a node holds (node, key, resourceVersion, time), and
  deliveries older than what the node held (a regression) apart from repeats of the
  version held (a duplicate);
- per session (node, opened, deliveries, when the last came): whether a replica
  delivered over a session after it should have stopped;
- control commands ``rdump PATH`` (all of that, as JSON, to a file) and ``drop-nodes
  PATH`` (drop the sessions of the nodes listed in a JSON file, as an edge whose
  heartbeats go unanswered would), beside the fleet's own (modules/fleet/control.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from beehive.message import Message
from modules import backoff, cli
from modules.fleet import cli as fleet_cli
from modules.fleet import control
from modules.fleet import store as store_mod
from modules.fleet.fleet import Fleet
from modules.fleet.session import EdgeSession


@dataclasses.dataclass
class Records:
    """What the wrapped sessions saw, since the fleet started."""

    events: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    arrivals: list[tuple[str, str, int, float]] = dataclasses.field(default_factory=list)
    regressions: list[tuple[str, str, int, int, float]] = dataclasses.field(default_factory=list)
    repeats: int = 0  # deliveries of the very version the node held
    # [node, opened, deliveries, time of the last] of every session
    sessions: list[list[Any]] = dataclasses.field(default_factory=list)


_CURRENT: dict[str, list[Any]] = {}  # node -> its current session's row in RECORDS.sessions


RECORDS = Records()


def install(*, initial: float, cap: float, connect_timeout: float) -> None:
    """Wrap the fleet's session, options and control channel (see the module docstring)."""
    on_open, on_close = EdgeSession.on_open, EdgeSession.on_close
    store_and_ack, run_command = EdgeSession._store_and_ack, control._run
    options_from = fleet_cli.options_from

    def opened(self: EdgeSession, conn: Any) -> None:
        now = time.monotonic()
        RECORDS.events.append((self.node_id, "open", now))
        _CURRENT[self.node_id] = row = [self.node_id, now, 0, None]
        RECORDS.sessions.append(row)
        on_open(self, conn)

    def closed(self: EdgeSession, conn: Any) -> None:
        if self._ws is conn:
            RECORDS.events.append((self.node_id, "close", time.monotonic()))
        on_close(self, conn)

    def stored(self: EdgeSession, message: Message) -> None:
        key = message.route.resource
        held = self.store.objects.get(key)
        store_and_ack(self, message)
        if message.route.operation not in store_mod.CHANGES:
            return
        rv, now = store_mod.resource_version(message), time.monotonic()
        row = _CURRENT.get(self.node_id)
        if row is not None:
            row[2] += 1
            row[3] = now
        after = self.store.objects.get(key)
        if rv is None:
            return
        if held is not None and rv < held[0]:
            RECORDS.regressions.append((self.node_id, key, rv, held[0], now))
        elif held is not None and rv == held[0]:
            RECORDS.repeats += 1
        elif after is not None and after[0] == rv:
            RECORDS.arrivals.append((self.node_id, key, rv, now))

    def backoff_of(self: EdgeSession, failures: int) -> float:
        return backoff.jittered(failures, initial=initial, cap=cap, rng=self._rng)

    def options(args: argparse.Namespace) -> Any:
        return dataclasses.replace(
            options_from(args), reconnect_max=cap, connect_timeout=connect_timeout
        )

    async def command(fleet: Fleet, words: list[str], cache: dict[str, Any]) -> dict[str, Any]:
        if words[0] == "rdump" and len(words) == 2:
            Path(words[1]).write_text(json.dumps(dataclasses.asdict(RECORDS)))
            return {"written": words[1]}
        if words[0] == "drop-nodes" and len(words) == 2:
            wanted = set(json.loads(Path(words[1]).read_text()))
            return {"dropped": sum(s.drop() for s in fleet.sessions if s.node_id in wanted)}
        return await run_command(fleet, words, cache)

    EdgeSession.on_open = opened  # type: ignore[method-assign]
    EdgeSession.on_close = closed  # type: ignore[method-assign]
    EdgeSession._store_and_ack = stored  # type: ignore[method-assign]
    EdgeSession._backoff = backoff_of  # type: ignore[method-assign]
    fleet_cli.options_from = options
    control._run = command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--reconnect-initial", type=float, default=0.2)
    parser.add_argument("--reconnect-max", type=float, default=2.0)
    parser.add_argument("--connect-timeout", type=float, default=3.0)
    ours, rest = parser.parse_known_args(argv)
    install(initial=ours.reconnect_initial, cap=ours.reconnect_max,
            connect_timeout=ours.connect_timeout)  # fmt: skip
    return cli.main(["fleet", *rest])


if __name__ == "__main__":
    sys.exit(main())
