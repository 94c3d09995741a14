"""``beehive debug store``: what an edge's metamanager holds.

Input: the admin command ``metamanager.store`` of a running edge process
(modules/metamanager/module.py). Output: a table or JSON on stdout.
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
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=lambda args: _store(args, connect))


def _store(args: argparse.Namespace, connect: Connect) -> int:
    rows = connect(args).call("metamanager.store", type=args.type)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    body = [[r["type"], r["namespace"], r["name"], r["resource_version"]] for r in rows]
    print(render(["TYPE", "NAMESPACE", "NAME", "RESOURCEVERSION"], body))
    return 0
