"""``beehive debug watches``: the edgecontroller's watch state per resource.

Input: the ``watches`` admin command of a running process (registered by the module:
watches, queues, refusals and the counts of the nodes' Events);
output: a table (or ``--json``) on stdout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from beehive.cli.table import render


def register(dsub: Any, client: Callable[[argparse.Namespace], Any]) -> None:
    """Add the ``watches`` subcommand to ``beehive debug``."""
    q = dsub.add_parser("watches", help="edgecontroller: list/watch state per resource")
    q.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args: argparse.Namespace) -> int:
        state = client(args).call("watches")
        print(json.dumps(state, indent=2) if args.json else watches_view(state))
        return 0

    q.set_defaults(func=run)


def watches_view(state: dict[str, Any]) -> str:
    """The table `beehive debug watches` prints."""
    rows = [
        [
            w["resource"],
            w["phase"],
            f"{w['for']:.0f}s",
            w["resource_version"] or "-",
            w["objects"],
            w["events"],
            w["restarts"],
            w["relists"],
            w["last_error"] or "-",
        ]
        for w in state["watches"]
    ]
    head = ["RESOURCE", "PHASE", "FOR", "RV", "OBJECTS", "EVENTS", "RESTARTS", "RELISTS", "ERROR"]
    queues = (
        f"downstream queued {state['downstream_queued']} (merged {state['downstream_merged']}),"
        f" upstream queued {state['upstream_queued']}"
        f" (unchanged pod status skipped {state.get('upstream_unchanged', 0)})"
    )
    refused = state.get("refused_by_node") or {}
    by_node = ", ".join(f"{node} {count}" for node, count in sorted(refused.items()))
    refusals = f", refused {state.get('upstream_refused', 0)}" + (
        f" ({by_node})" if by_node else ""
    )
    events = state.get("node_events")
    recorded = (
        f"node events: recorded {events['recorded']}, created {events['created']}, patched"
        f" {events['patched']}, dropped {events['dropped_full']} (queue full) and"
        f" {events['dropped_spam']} (spam filter), failed {events['failed']}\n"
        if events
        else ""
    )
    return f"{render(head, rows)}\n{recorded}{queues}{refusals}"
