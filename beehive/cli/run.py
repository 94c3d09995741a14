"""``beehive run CONFIG``: start what the config enables, stop cleanly on a signal."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from beehive import config, runtime
from beehive.admin import AdminServer

if TYPE_CHECKING:
    from beehive.cli import App

log = logging.getLogger("beehive.run")


def register(sub: Any, app: App) -> None:
    p = sub.add_parser("run", help="run the modules a config enables until SIGINT/SIGTERM")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=lambda args: run(args, app))


def run(args: argparse.Namespace, app: App) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = app.load(args.config)
    runtime.tune_gc(cfg.hive.gc_threshold)
    stop = threading.Event()
    received: list[int] = []  # the stopping signal, for the log

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    # `kill -USR1 <pid>`: every thread's stack to stderr, the process runs on (for one
    # that seems stuck; written by the interpreter, whatever holds the GIL or a lock)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    with app.services(cfg) as services:
        hive = config.build_hive(cfg, services=services)
        admin = _start_admin(hive, cfg)
        hive.start()
        runtime.freeze_startup()
        names = ", ".join(m.name for m in cfg.enabled)
        where = admin.address if admin else "off"
        print(f"{app.prog}: running {names}; admin at {where}", file=sys.stderr, flush=True)
        try:
            stop.wait()
            why = signal.Signals(received[0]).name if received else "stop"
            print(f"{app.prog}: stopping ({why})", file=sys.stderr, flush=True)
        finally:
            report = hive.stop(timeout=cfg.hive.stop_timeout)
            if admin is not None:
                admin.stop()
    left = ", ".join(f"{name}: {len(msgs)}" for name, msgs in report.undelivered.items())
    suffix = f"; undelivered messages kept as dead letters ({left})" if left else ""
    print(f"{app.prog}: stopped{suffix}", file=sys.stderr, flush=True)
    return 0


def _start_admin(hive: Any, cfg: config.Config) -> AdminServer | None:
    address = cfg.admin_address
    if address == "off":
        return None
    admin = AdminServer(hive, address)
    admin.start()
    return admin
