"""The ``beehive fleet`` subcommand: parse options, run a `Fleet`, print the summary.

`register(subparsers)` adds it to the project's console script. Live progress goes
to stderr once a second; the summary to stdout, as text or with ``--json`` as one
JSON object. Runs until ``--duration`` ends, SIGINT/SIGTERM, or (with
``--control``) a ``stop`` command or the end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from beehive import runtime
from modules.fleet import control, join, stats
from modules.fleet.fleet import Fleet
from modules.fleet.options import Faults, FleetOptions


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `fleet`; the parsed namespace's `func` attribute runs it."""
    parser = subparsers.add_parser(
        "fleet",
        help="hold many hollow edge nodes connected to a cloudcore",
        description="Connect N hollow edge nodes to a cloudcore (ours or KubeEdge's) from one"
        " process, store and ack what they receive, report status, and inject faults.",
    )
    add = parser.add_argument
    add("--cloud", required=True, metavar="HOST:PORT", help="cloudhub's websocket address")
    add("--nodes", type=int, required=True, metavar="N", help="how many edge nodes")
    add(
        "--prefix",
        default="fleet",
        metavar="NAME",
        help="node names are NAME-<i> (default: %(default)s)",
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token", default="", help="join token, to enrol nodes without a certificate"
    )
    auth.add_argument("--plain", action="store_true", help="plain ws://, no TLS and no enrolment")
    add(
        "--certs",
        type=Path,
        default=Path("fleet-certs"),
        metavar="DIR",
        help="node certificates, reused across runs (default: %(default)s)",
    )
    add(
        "--cert-server",
        default="",
        metavar="URL",
        help="certificate server (default: https://<cloud host>:10002)",
    )
    add("--kubeconfig", default="", metavar="PATH", help="create the Node objects through this API")
    add("--json", action="store_true", help="print the summary as JSON")
    add(
        "--duration",
        type=float,
        default=0.0,
        metavar="S",
        help="stop after S seconds (default: run until stopped)",
    )
    add(
        "--heartbeat",
        type=float,
        default=15.0,
        metavar="S",
        help="keepalive period (default: %(default)s)",
    )
    add(
        "--status-interval",
        type=float,
        default=10.0,
        metavar="S",
        help="node status period, jittered per node (default: %(default)s)",
    )
    add("--no-pod-status", action="store_true", help="do not report stored pods as Running")
    add(
        "--store",
        choices=["memory", "sqlite"],
        default="memory",
        help="where nodes keep what they receive",
    )
    add(
        "--store-dir",
        type=Path,
        default=Path("fleet-store"),
        metavar="DIR",
        help="sqlite files, one per node",
    )
    add(
        "--connect-concurrency",
        type=int,
        default=64,
        metavar="N",
        help="handshakes at once (default: %(default)s)",
    )
    add(
        "--handshake-threads",
        type=int,
        default=2,
        metavar="N",
        help="threads for TLS handshakes, 0: on the event loop (default: %(default)s)",
    )
    add(
        "--enroll-concurrency",
        type=int,
        default=8,
        metavar="N",
        help="enrolments at once (default: %(default)s)",
    )
    add("--seed", type=int, default=0, help="seed for jitter and fault choices")
    add("--control", action="store_true", help="read commands on stdin, reply in JSON on stdout")
    add("--no-progress", action="store_true", help="no live progress on stderr")
    faults = parser.add_argument_group("faults (times count from when every node first connected)")
    fadd = faults.add_argument
    fadd(
        "--storm-at",
        type=float,
        default=0.0,
        metavar="S",
        help="drop every session at S and reconnect",
    )
    fadd(
        "--drop-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="fraction of sessions --drop-at drops",
    )
    fadd(
        "--drop-at",
        type=float,
        default=0.0,
        metavar="S",
        help="when to drop --drop-fraction of sessions",
    )
    fadd("--ack-delay", type=float, default=0.0, metavar="S", help="hold every ack back S seconds")
    fadd(
        "--withhold-acks",
        type=float,
        default=0.0,
        metavar="F",
        help="never ack the first copy of a fraction F of deliveries",
    )
    fadd(
        "--malformed-nodes",
        type=int,
        default=0,
        metavar="K",
        help="the first K nodes send malformed frames on connect",
    )
    parser.set_defaults(func=run)
    return parser  # fmt: skip


def options_from(args: argparse.Namespace) -> FleetOptions:
    """The parsed command line as `FleetOptions` (raises ValueError on bad values)."""
    faults = Faults(
        storm_at=args.storm_at, drop_fraction=args.drop_fraction, drop_at=args.drop_at,
        ack_delay=args.ack_delay, withhold_acks=args.withhold_acks,
        malformed_nodes=args.malformed_nodes,
    )  # fmt: skip
    return FleetOptions(
        cloud=args.cloud, nodes=args.nodes, prefix=args.prefix, plain=args.plain,
        token=args.token, certs=args.certs, cert_server=args.cert_server,
        kubeconfig=args.kubeconfig, heartbeat=args.heartbeat,
        status_interval=args.status_interval, pod_status=not args.no_pod_status,
        store=args.store, store_dir=args.store_dir,
        connect_concurrency=args.connect_concurrency,
        handshake_threads=args.handshake_threads,
        enroll_concurrency=args.enroll_concurrency, seed=args.seed, faults=faults,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run the fleet; 0 when it ran, 2 for bad options, 1 when nodes could not join."""
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    runtime.tune_gc(runtime.DEFAULT_GC_THRESHOLD)  # as beehive run does (see beehive.runtime)
    try:
        report = asyncio.run(_main(options, args))
    except join.JoinError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(report) if args.json else stats.format_summary(report)
    print(text, flush=True)
    return 0


async def _main(options: FleetOptions, args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet(options, owns_process=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fleet.stop.set)
    if not args.no_progress:
        fleet.progress(lambda line: print(line, file=sys.stderr, flush=True))
    if args.control:
        control.start(fleet)
    return await fleet.run(duration=args.duration)
