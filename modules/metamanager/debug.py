"""``beehive debug store``: what an edge's metamanager holds.

Input: the admin command ``<module>.store`` of each metamanager in a running edge
process (modules/metamanager/module.py; a process may hold several edges). Output: a
table or JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from beehive.cli.table import render

Connect = Callable[[argparse.Namespace], Any]  # args -> AdminClient


def register(dsub: Any, connect: Connect) -> None:
    """Add ``store`` to ``beehive debug``."""
    q = dsub.add_parser("store", help="metamanager: stored objects (type, namespace, name, RV)")
    q.add_argument("--type", default="", help="only this resource type, e.g. pod")
    q.add_argument("--node", default="", help="only this edge node (a process may hold several)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=lambda args: _store(args, connect))


def _store(args: argparse.Namespace, connect: Connect) -> int:
    admin = connect(args)
    stores = [m["name"] for m in admin.call("modules") if m["impl"].endswith(":MetaManager")]
    rows = [row for name in stores for row in admin.call(f"{name}.store", type=args.type)]
    if args.node:
        rows = [r for r in rows if r["node"] == args.node]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    body = [[r["node"], r["type"], r["namespace"], r["name"], r["resource_version"]] for r in rows]
    print(render(["NODE", "TYPE", "NAMESPACE", "NAME", "RESOURCEVERSION"], body))
    return 0
