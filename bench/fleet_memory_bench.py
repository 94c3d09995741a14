"""Fleet memory benchmark: what one idle connected TLS edge costs the fleet's process.

Run: python bench/fleet_memory_bench.py [--sizes 1,500,1000] [--plain]

Processes: cloudhub (`bench/cloudhub_bench.py`'s, with its injector: no API server)
and, one after the other, a `beehive fleet` process per size in `--sizes`, every
node with a certificate made here first (`--certs`: no enrolment), each held until
every node is connected and then `--settle` seconds more. Prints the fleet's RSS at
each size and the cost per edge between sizes (the slope: what the process costs
beyond its start-up), and cloudhub's RSS per connected edge at the largest size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from cloudhub_bench import HERE, BenchCerts, CloudHub, free_port
from e2e_bench import FleetControl


def fleet_rss(
    tmp: Path, hub: CloudHub, port: int, nodes: int, certs: BenchCerts | None, args: Any
) -> tuple[int, int, int]:
    """The RSS of a fleet of `nodes` nodes once all are connected and `settle` s passed,
    cloudhub's then, and the fleet's again after every session was dropped and came back."""
    auth = ["--certs", str(certs.folder)] if certs is not None else ["--plain"]
    command = [sys.executable, "-m", "modules.cli", "fleet", "--cloud", f"127.0.0.1:{port}",
               "--nodes", str(nodes), "--prefix", "bench", *auth, "--control",
               "--no-progress", "--no-pod-status", "--status-interval", "60", "--json",
               "--connect-concurrency", str(nodes)]  # fmt: skip
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=(tmp / f"fleet-{nodes}.log").open("w"), text=True, cwd=HERE.parent,
    )  # fmt: skip
    fleet = FleetControl(proc)
    try:
        connected = rss(fleet, proc.pid, nodes, nodes, args)
        hub_rss = int(hub.ps.memory_info().rss)
        fleet.ask("storm")
        return connected, hub_rss, rss(fleet, proc.pid, nodes, 2 * nodes, args)
    finally:
        fleet.ask("stop")
        proc.wait(30)


def rss(fleet: FleetControl, pid: int, nodes: int, connects: int, args: Any) -> int:
    """The fleet's RSS once `connects` connections were made, all `nodes` are connected
    and `settle` seconds passed."""
    deadline = time.monotonic() + args.timeout
    while (stats := fleet.ask("stats"))["connected"] < nodes or stats["connects"] < connects:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{nodes} nodes did not connect within {args.timeout} s")
        time.sleep(0.2)
    time.sleep(args.settle)  # registrations and first status reports drain (bounded)
    if fleet.ask("stats")["connected"] != nodes:
        raise RuntimeError("nodes disconnected while settling")
    return int(psutil.Process(pid).memory_info().rss)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    sizes = sorted(int(n) for n in args.sizes.split(","))
    names = [f"bench-{i}" for i in range(sizes[-1])]
    certs = None if args.plain else BenchCerts.create(tmp / "certs", names)
    port = free_port()
    hub = CloudHub(tmp, port, sizes[-1], certs)
    try:
        time.sleep(3)  # start-up (bounded)
        rss: dict[int, int] = {}
        after_storm: dict[int, int] = {}
        hub_before = hub_after = 0
        for nodes in sizes:
            if nodes == sizes[-1]:
                hub_before = hub.ps.memory_info().rss
            rss[nodes], hub_after, after_storm[nodes] = fleet_rss(
                tmp, hub, port, nodes, certs, args
            )
    finally:
        hub.stop()
    return {"plain": args.plain, "fleet_rss_mib": {n: round(r / 2**20, 1) for n, r in rss.items()},
            "fleet_kib_per_edge": slopes(sizes, rss),
            "after_storm_rss_mib": {n: round(r / 2**20, 1) for n, r in after_storm.items()},
            "after_storm_kib_per_edge": slopes(sizes, after_storm),
            "fleet_kib_per_edge_all": round(rss[sizes[-1]] / sizes[-1] / 1024, 1),
            "cloudhub_kib_per_edge": round((hub_after - hub_before) / sizes[-1] / 1024, 1),
            }  # fmt: skip


def slopes(sizes: list[int], rss: dict[int, int]) -> dict[str, float]:
    """KiB per edge between successive sizes."""
    return {
        f"{a}-{b}": round((rss[b] - rss[a]) / (b - a) / 1024, 1)
        for a, b in itertools.pairwise(sizes)
    }


def report(result: dict[str, Any]) -> str:
    def line(rss: dict[int, float], per_edge: dict[str, float]) -> str:
        sizes = ", ".join(f"{n}: {mib} MiB" for n, mib in rss.items())
        between = ", ".join(f"{k}: {v} KiB" for k, v in per_edge.items())
        return f"{sizes}; per edge between sizes: {between}"

    connected = line(result["fleet_rss_mib"], result["fleet_kib_per_edge"])
    stormed = line(result["after_storm_rss_mib"], result["after_storm_kib_per_edge"])
    return (
        f"fleet over {'plain websockets' if result['plain'] else 'mutual TLS'}, RSS by nodes:"
        f" {connected}; all of the process per edge: {result['fleet_kib_per_edge_all']} KiB\n"
        f"after a storm (every session dropped, back): {stormed}\n"
        f"cloudhub per connected edge: {result['cloudhub_kib_per_edge']} KiB"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,500,1000", help="fleet sizes, comma-separated")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after connecting")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to connect")
    parser.add_argument("--plain", action="store_true", help="plain websockets, no TLS")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="fleet-memory-") as tmp:
        result = run(args, Path(tmp))
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
