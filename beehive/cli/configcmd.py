"""``beehive config check|show CONFIG``: validate a config, print it with defaults filled in."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import yaml

from beehive import config

if TYPE_CHECKING:
    from beehive.cli import App


def register(sub: Any, app: App) -> None:
    p = sub.add_parser("config", help="check a config or show it with defaults filled in")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a config file")
    check.add_argument("config")
    check.set_defaults(func=lambda args: _check(args, app))
    show = csub.add_parser("show", help="print the effective config (defaults filled in)")
    show.add_argument("config")
    show.set_defaults(func=lambda args: _show(args, app))


def _check(args: argparse.Namespace, app: App) -> int:
    cfg = app.load(args.config)
    enabled = ", ".join(m.name for m in cfg.enabled) or "none"
    print(
        f"{args.config}: OK ({len(cfg.enabled)} of {len(cfg.modules)} modules enabled: {enabled})"
    )
    return 0


def _show(args: argparse.Namespace, app: App) -> int:
    cfg = app.load(args.config)
    print(yaml.safe_dump(config.effective(cfg), sort_keys=False), end="")
    return 0
