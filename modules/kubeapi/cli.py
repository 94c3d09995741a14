"""The `kube-api` subcommand: serve an embedded API server until SIGINT or SIGTERM.

`register(subparsers)` adds the subcommand to the project's console script; its
handler (`args.func(args)`) writes a kubeconfig for the server to `--kubeconfig`,
prints the URL, serves, and returns an exit code.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from beehive import runtime
from modules.kubeapi.server import EmbeddedKubeAPI


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add `kube-api`; the parsed namespace's `func` attribute runs it."""
    parser = subparsers.add_parser(
        "kube-api",
        help="serve an embedded Kubernetes API server",
        description="Serve an embedded Kubernetes API server until SIGINT or SIGTERM,"
        " after writing a kubeconfig for it.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--data", default="", help="sqlite file to keep state in (default: memory)")
    parser.add_argument(
        "--kubeconfig", required=True,
        help="where to write a kubeconfig for it (0600: it holds the server's token)",
    )  # fmt: skip
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until SIGINT/SIGTERM (or `stop` is set, for callers in another thread).

    On the main thread the process is the server's own: it also gets the garbage
    collector threshold `beehive run` uses (see `beehive.runtime`).
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        runtime.tune_gc(runtime.DEFAULT_GC_THRESHOLD)
    restore = _install_signals(stop)
    try:
        with EmbeddedKubeAPI(host=args.host, port=args.port, data_path=args.data or None) as server:
            path = server.write_kubeconfig(args.kubeconfig)
            print(f"kube-api serving at {server.url}; kubeconfig written to {path}", flush=True)
            stop.wait()
    except OSError as exc:
        print(f"kube-api: {exc}", file=sys.stderr)
        return 1
    finally:
        restore()
    return 0


def _install_signals(stop: threading.Event) -> Callable[[], None]:
    """Set `stop` on SIGINT/SIGTERM when on the main thread; returns an undo callable."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m modules.kubeapi.cli --port N --kubeconfig PATH`."""
    parser = argparse.ArgumentParser(prog="kube-api")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["kube-api", *(sys.argv[1:] if argv is None else argv)])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
