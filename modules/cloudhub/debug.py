"""``beehive debug nodes`` and ``peek-node``: cloudhub's view of each edge node.

Input: the admin commands ``cloudhub.nodes``, ``cloudhub.peek`` and
``cloudhub.objectsync`` (the record writer's counters, when records are kept) of a
running process (modules/cloudhub/module.py). Output: a table or JSON on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from typing import Any

from beehive import errors
from beehive.cli.table import age, render

Connect = Callable[[argparse.Namespace], Any]  # args -> AdminClient


def register(dsub: Any, connect: Connect) -> None:
    """Add ``nodes`` and ``peek-node`` to ``beehive debug``."""
    q = dsub.add_parser("nodes", help="cloudhub: per edge node, connection, queue and acks")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--node", default="", help="only this node")
    q.add_argument("--peek", type=int, default=0, metavar="N", help="with --node: N queued")
    q.set_defaults(func=lambda args: _nodes(args, connect))
    q = dsub.add_parser("peek-node", help="cloudhub: messages queued for a node (secrets hidden)")
    q.add_argument("node")
    q.add_argument("-n", "--limit", type=int, default=10)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda args: _peek(args, connect, args.node, args.limit))


def _nodes(args: argparse.Namespace, connect: Connect) -> int:
    admin = connect(args)
    rows = admin.call("cloudhub.nodes", node=args.node)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(nodes_table(rows))
        with contextlib.suppress(errors.AdminError):  # no records kept: no such command
            print(objectsync_line(admin.call("cloudhub.objectsync")))
    if args.node and args.peek:
        return _peek(args, connect, args.node, args.peek)
    return 0


def _peek(args: argparse.Namespace, connect: Connect, node: str, limit: int) -> int:
    queued = connect(args).call("cloudhub.peek", node=node, limit=limit)
    if args.json:
        print(json.dumps(queued, indent=2))
        return 0
    print(peek_table(queued))
    return 0


def nodes_table(rows: list[dict[str, Any]]) -> str:
    head = ["NODE", "CONNECTED", "QUEUED", "IN FLIGHT", "OLDEST UNACKED", "SENT", "ACKED",
            "RESENT", "LAST ACK", "DOWN/S", "UP/S", "LIMITED", "REFUSED", "BAD FRAMES"]  # fmt: skip
    body = [
        [r["node"], "yes" if r["connected"] else "no", r["queued"], r["in_flight"],
         _age(r["oldest_unacked_age"]), r["sent"], r["acked"], r["resends"],
         _age(r["last_ack_age"]), f"{r['rate_down']:.1f}", f"{r['rate_up']:.1f}",
         r["rate_limited"] + r.get("throttled", 0), r["rejected"], r["decode_failed"]]
        for r in rows
    ]  # fmt: skip
    if rows and "owner" in rows[0]:  # several replicas: who owns each node
        head.insert(1, "OWNER")
        for line, r in zip(body, rows, strict=True):
            line.insert(1, r["owner"] or "-")
    return render(head, body)


def objectsync_line(stats: dict[str, Any]) -> str:
    """The record writer's API writes by kind, what waits and how long."""
    writes = stats["writes"]
    line = (f"records of what nodes acked: writes create {writes['create']}, patch"
            f" {writes['patch']}, delete {writes['delete']}; waiting"
            f" {stats['pending_records']} record(s), {stats['pending_changes']} change(s);"
            f" lag {stats['lag']:.1f} s (peak {stats['peak_lag']:.1f} s); conflicts"
            f" {stats['conflicts']}, failures {stats['failures']}")  # fmt: skip
    if stats.get("legacy_left"):
        line += f"; KubeEdge records to delete {stats['legacy_left']}"
    return line


def peek_table(queued: list[dict[str, Any]]) -> str:
    body = []
    for message in queued:
        route, header = message.get("route", {}), message.get("header", {})
        content = json.dumps(message.get("content"))
        body.append([header.get("msg_id", ""), route.get("operation", ""),
                     route.get("resource", ""), header.get("resourceversion", ""),
                     content if len(content) <= 60 else content[:57] + "..."])  # fmt: skip
    return render(["MSG_ID", "OPERATION", "RESOURCE", "RV", "CONTENT"], body)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{age(seconds)} ago"
