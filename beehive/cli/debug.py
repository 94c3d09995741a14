"""``beehive debug``: look inside a running ``beehive run`` through its admin endpoint.

The process is found from its config file (``-c CONFIG``, the same file it was
started with) or an explicit ``--address``. Every listing has ``--json`` for
scripts; ``mailboxes`` and ``modules`` can ``--watch``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from beehive import errors
from beehive.admin import AdminClient, message_json
from beehive.cli.table import age, render
from beehive.message import Message

if TYPE_CHECKING:
    from beehive.cli import App


def register(sub: Any, app: App) -> None:
    p = sub.add_parser("debug", help="inspect a running process (modules, mailboxes, messages)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", help="config the process was started with")
    where.add_argument("--address", help="admin address (unix:///path or tcp://host:port)")
    dsub = p.add_subparsers(dest="debug_command", required=True, metavar="WHAT")

    for name, view, text in (
        ("modules", _modules_view, "modules: state, restarts, failures, implementation"),
        ("mailboxes", _mailboxes_view, "mailboxes: depth, rates, oldest message, drops"),
    ):
        q = dsub.add_parser(name, help=text)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.add_argument("--watch", action="store_true", help="refresh until interrupted")
        q.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
        q.add_argument("--count", type=int, default=0, help="with --watch: stop after N refreshes")
        q.set_defaults(func=lambda args, view=view: _listing(args, app, view))

    q = dsub.add_parser("peek", help="show queued messages of a module without consuming them")
    q.add_argument("module")
    q.add_argument("-n", "--limit", type=int, default=10)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda args: _peek(args, app))

    q = dsub.add_parser("deadletters", help="recent undeliverable messages and why")
    q.add_argument("-n", "--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=lambda args: _deadletters(args, app))

    q = dsub.add_parser("send", help="put a message into a module (for poking)")
    q.add_argument("module")
    q.add_argument("--operation", default="update")
    q.add_argument("--resource", default="")
    q.add_argument("--group", default="")
    q.add_argument("--source", default="beehive-debug")
    q.add_argument("--resource-version", default="")
    q.add_argument("--content", default="null", help="JSON (a bare word is sent as a string)")
    q.add_argument("--sync", action="store_true", help="wait for the reply and print it")
    q.add_argument("--timeout", type=float, default=5.0)
    q.set_defaults(func=lambda args: _send(args, app))

    q = dsub.add_parser("call", help="run any admin command, e.g. one a module added")
    q.add_argument("name")
    q.add_argument("args", nargs="*", help="KEY=VALUE (VALUE parsed as JSON when it is)")
    q.set_defaults(func=lambda args: _call(args, app))

    for registrar in app.debug_commands:
        registrar(dsub, lambda args: client(args, app))


def client(args: argparse.Namespace, app: App) -> AdminClient:
    """The admin client for ``-c CONFIG`` or ``--address``."""
    if args.address:
        return AdminClient(args.address)
    if args.config:
        return AdminClient(app.load(args.config).admin_address)
    raise errors.BeehiveError("say which process: -c CONFIG or --address ADDRESS")


def _listing(
    args: argparse.Namespace, app: App, view: Callable[[list[dict[str, Any]]], str]
) -> int:
    admin = client(args, app)
    shown = 0
    while True:
        modules = admin.call("modules")
        if args.json:
            print(json.dumps(modules, indent=None if args.watch else 2), flush=True)
        else:
            if args.watch:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(view(modules), flush=True)
        shown += 1
        if not args.watch or (args.count and shown >= args.count):
            return 0
        time.sleep(args.interval)


def _mailboxes_view(modules: list[dict[str, Any]]) -> str:
    rows = [
        [
            m["name"],
            m["state"],
            f"{m['mailbox']['depth']}/{m['mailbox']['capacity']}",
            m["mailbox"]["received"],
            m["mailbox"]["delivered"],
            f"{m['rate_in']:.1f}",
            f"{m['rate_out']:.1f}",
            age(m["mailbox"]["oldest_age"]) if m["mailbox"]["depth"] else "-",
            m["mailbox"]["dropped"],
            m["restarts"],
        ]
        for m in modules
    ]
    head = ["MODULE", "STATE", "DEPTH", "IN", "OUT", "IN/S", "OUT/S", "OLDEST", "DROPS", "RESTARTS"]
    return render(head, rows)


def _modules_view(modules: list[dict[str, Any]]) -> str:
    rows = [
        [m["name"], m["group"] or "-", m["style"], m["state"], m["restarts"], m["failures"],
         m["impl"], m["last_error"] or "-"]
        for m in modules
    ]  # fmt: skip
    head = ["MODULE", "GROUP", "STYLE", "STATE", "RESTARTS", "FAILURES", "IMPL", "LAST ERROR"]
    return render(head, rows)


def _peek(args: argparse.Namespace, app: App) -> int:
    queued = client(args, app).call("peek", module=args.module, limit=args.limit)
    if args.json:
        print(json.dumps(queued, indent=2))
        return 0
    rows = [_message_row(q["message"], age(q["age"])) for q in queued]
    print(render(["AGE", "MSG_ID", "OPERATION", "RESOURCE", "SOURCE", "CONTENT"], rows))
    return 0


def _deadletters(args: argparse.Namespace, app: App) -> int:
    result = client(args, app).call("deadletters", limit=args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [
        [time.strftime("%H:%M:%S", time.localtime(d["at"])), d["module"],
         d["message"]["header"]["msg_id"], d["reason"]]
        for d in result["letters"]
    ]  # fmt: skip
    print(render(["AT", "MODULE", "MSG_ID", "REASON"], rows))
    print(f"{result['total']} dead letter(s) in all")
    return 0


def _send(args: argparse.Namespace, app: App) -> int:
    msg = Message.new(
        source=args.source,
        group=args.group,
        operation=args.operation,
        resource=args.resource,
        content=_json_or_text(args.content),
        resource_version=args.resource_version,
    )
    result = client(args, app).call(
        "send", module=args.module, message=message_json(msg), sync=args.sync, timeout=args.timeout
    )
    print(json.dumps(result, indent=2) if args.sync else f"sent {result['sent']} to {args.module}")
    return 0


def _call(args: argparse.Namespace, app: App) -> int:
    kwargs = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep:
            raise errors.BeehiveError(f"expected KEY=VALUE, found {item!r}")
        kwargs[key] = _json_or_text(value)
    print(json.dumps(client(args, app).call(args.name, **kwargs), indent=2))
    return 0


def _message_row(message: dict[str, Any], shown_age: str) -> list[Any]:
    route = message.get("route", {})
    content = json.dumps(message.get("content"))
    return [
        shown_age,
        message["header"]["msg_id"],
        route.get("operation", ""),
        route.get("resource", ""),
        route.get("source", ""),
        content if len(content) <= 60 else content[:57] + "...",
    ]


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
