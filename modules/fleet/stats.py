"""Fleet-wide counters, the live progress line and the final summary.

Input: increments from the sessions and the fleet (all on the event loop
thread). Output: `progress_line` (stderr while running) and `summary` (the final
report, printed as text or as JSON for scripts).
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(slots=True)
class Counters:
    """Totals since the fleet started."""

    nodes: int = 0  # nodes in the fleet
    enrolled: int = 0  # nodes holding a valid certificate (TLS runs)
    nodes_created: int = 0  # Node objects created through the API
    connected: int = 0  # sessions up right now
    connects: int = 0  # successful connections, reconnects included
    disconnects: int = 0  # sessions that ended
    connect_failures: int = 0  # handshakes that failed
    received: int = 0  # messages from the cloud (replies included)
    stored: int = 0  # deliveries that changed what a node holds
    deleted: int = 0  # deliveries that removed an object
    duplicates: int = 0  # deliveries of a version the node already held (or older)
    acks: int = 0  # acks sent
    acks_withheld: int = 0  # deliveries deliberately left unacked
    status_reports: int = 0  # node and pod status messages sent
    malformed_sent: int = 0  # malformed frames sent on purpose
    store_errors: int = 0  # deliveries the store refused (answered with an error)
    cloud_errors: int = 0  # frames the edge protocol rejected or error replies
    drops: int = 0  # sessions dropped on purpose (storms and fraction drops)

    @property
    def errors(self) -> int:
        return self.connect_failures + self.store_errors + self.cloud_errors


def summary(counters: Counters, *, elapsed: float, held: dict[str, int]) -> dict[str, Any]:
    """The final report: every counter, the run time, the rate and what is held."""
    report: dict[str, Any] = dataclasses.asdict(counters)
    report["errors"] = counters.errors
    report["elapsed_seconds"] = round(elapsed, 3)
    report["messages_per_second"] = round(counters.received / elapsed, 1) if elapsed > 0 else 0.0
    report["held"] = held
    return report


def progress_line(counters: Counters, *, elapsed: float, rate: float) -> str:
    """One line of live progress."""
    c = counters
    enrolled = f"  enrolled {c.enrolled}/{c.nodes}" if c.enrolled else ""
    return (
        f"fleet {elapsed:7.1f}s{enrolled}  connected {c.connected}/{c.nodes}"
        f"  msgs {c.received} ({rate:,.0f}/s)  acks {c.acks}  dup {c.duplicates}"
        f"  drops {c.drops}  errors {c.errors}"
    )


def format_summary(report: dict[str, Any]) -> str:
    """The summary as aligned text lines."""
    lines = [f"{key:>20}: {value}" for key, value in report.items() if key != "held"]
    held = ", ".join(f"{kind} {count}" for kind, count in sorted(report["held"].items()))
    lines.append(f"{'held':>20}: {held or 'nothing'}")
    return "\n".join(lines)
