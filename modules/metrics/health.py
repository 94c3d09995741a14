"""Health and readiness of a hive: what /healthz and /readyz answer.

Input: `Hive.modules()` (state and whether each actor runs) and the modules'
``<module>.health`` / ``<module>.ready`` admin commands (`modules.probes`), called
with what is left of one deadline. Output: the problems found, one line each,
prefixed with the module's name; none means healthy (or ready).

Healthy: no module has FAILED or is stopping, every started module's actor runs,
and each running module's own health probe passes (cloudhub: its event loop answers;
edgecontroller: its downstream thread runs; edgehub: its connection loop runs). A
module starting or waiting out its restart backoff is healthy: the hive is on it.
Ready: every module is RUNNING, and each module's ready probe passes (cloudhub:
it listens; edgecontroller: every watch has listed; edgehub: connected).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from beehive import Hive
from modules import probes

_UNHEALTHY = frozenset({"failed", "stopping", "stopped"})
_NO_ACTOR = frozenset({"registered", "finished", "failed", "stopped"})  # no thread expected


def healthy(hive: Hive, *, timeout: float) -> list[str]:
    """The problems that make the hive unhealthy (see the module docstring)."""
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for info in hive.modules():
        if info.state in _UNHEALTHY:
            why = f": {info.last_error}" if info.state == "failed" and info.last_error else ""
            problems.append(f"{info.name}: {info.state}{why}")
        elif not info.alive and info.state not in _NO_ACTOR:
            problems.append(f"{info.name}: its actor is not running ({info.state})")
        elif info.state == "running":  # starting or restarting: the hive is on it
            problems += _probe(hive, info.name, probes.HEALTH, deadline)
    return problems


def ready(hive: Hive, *, timeout: float) -> list[str]:
    """The problems that make the hive not ready (see the module docstring)."""
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for info in hive.modules():
        if info.state not in ("running", "finished"):
            problems.append(f"{info.name}: {info.state}")
        else:
            problems += _probe(hive, info.name, probes.READY, deadline)
    return problems


def _probe(hive: Hive, module: str, what: str, deadline: float) -> list[str]:
    probe: Callable[..., list[str]] | None = hive.commands.get(probes.command(module, what))
    if probe is None:
        return []
    left = max(deadline - time.monotonic(), 0.05)
    try:
        found = probe(timeout=left)
    except Exception as exc:  # a probe that fails is a problem, not a crash of /healthz
        return [f"{module}: {what} probe failed: {type(exc).__name__}: {exc}"]
    return [f"{module}: {problem}" for problem in found]
