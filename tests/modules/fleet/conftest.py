"""Fixtures for the fleet tests: a cloudcore (embedded API, edgecontroller, cloudhub)
in this process, and a fleet on its own event loop thread that tests call into."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from beehive import Hive
from beehive.config import build_hive
from modules.cli import APP, services
from modules.fleet import Faults, Fleet, FleetOptions
from tests.fakes import eventually, free_port

T = TypeVar("T")
WAIT = 15.0  # seconds, bound of every wait on the cloud or the fleet

CONFIG = """
kube: {{mode: embedded}}
hive: {{admin: {{address: "off"}}}}
modules:
  edgecontroller: {{}}
  cloudhub:
    settings: {{address: 127.0.0.1, port: {port}, resend_initial: 0.3, resend_max: 1}}
"""


@dataclasses.dataclass
class Cloud:
    """A running cloudcore: where edges connect, a client for its API, and its hive."""

    address: str
    kubeconfig: Path
    core: Any  # CoreV1Api
    hive: Hive


@contextlib.contextmanager
def cloudcore(tmp_path: Path, config: str) -> Iterator[Cloud]:
    """A cloudcore in this process, from `config` (a YAML template taking ``{port}``,
    the port cloudhub listens on), stopped on the way out."""
    port = free_port()
    path = tmp_path / "cloudcore.yaml"
    path.write_text(config.format(port=port))
    cfg = APP.load(str(path))
    with services(cfg) as shared:
        hive = build_hive(cfg, services=shared)
        hive.start()
        kube = shared["kube"]
        api = kube.api_client()
        from kubernetes import client

        try:
            yield Cloud(f"127.0.0.1:{port}", kube.kubeconfig_path, client.CoreV1Api(api), hive)
        finally:
            hive.stop(timeout=5)
            api.close()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with cloudcore(tmp_path, CONFIG) as running:
        yield running


class FleetThread:
    """A `Fleet` running on an event loop in a thread; `call` runs code on that loop."""

    def __init__(self, options: FleetOptions, **fleet: Any) -> None:
        self.options = options
        self._fleet_args = fleet  # Fleet's keyword arguments
        self.loop = asyncio.new_event_loop()
        self._fleet: concurrent.futures.Future[Fleet] = concurrent.futures.Future()
        self.result: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name="fleet-test", daemon=True)
        self._thread.start()
        self.fleet = self._fleet.result(timeout=WAIT)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        fleet = Fleet(self.options, **self._fleet_args)
        self._fleet.set_result(fleet)
        try:
            self.result = self.loop.run_until_complete(fleet.run())
        finally:
            self.loop.close()

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=WAIT)

    def counter(self, name: str) -> int:
        return int(self.call(lambda: getattr(self.fleet.counters, name)))

    def wait_connected(self) -> bool:
        return eventually(lambda: self.counter("connected") == self.options.nodes, timeout=WAIT)

    def holds(self, expected: dict[str, dict[str, int | None]]) -> bool:
        def met() -> bool:
            result = self.call(lambda: self.fleet.check(expected))
            return result["met"] == result["total"]

        return eventually(met, timeout=WAIT)

    def stop(self) -> dict[str, Any]:
        self.loop.call_soon_threadsafe(self.fleet.stop.set)
        self._thread.join(timeout=WAIT)
        assert not self._thread.is_alive()
        return self.result


@pytest.fixture
def start_fleet(cloud: Cloud) -> Iterator[Callable[..., FleetThread]]:
    """Start fleets against `cloud` (plain websocket); all are stopped afterwards."""
    fleets: list[FleetThread] = []

    def start(nodes: int = 3, faults: Faults | None = None, **options: Any) -> FleetThread:
        opts = FleetOptions(
            cloud=cloud.address, nodes=nodes, prefix=f"f{uuid.uuid4().hex[:6]}", plain=True,
            heartbeat=1.0, status_interval=0.5, faults=faults or Faults(), **options,
        )  # fmt: skip
        fleet = FleetThread(opts)
        fleets.append(fleet)
        return fleet

    yield start
    for fleet in fleets:
        if fleet.loop.is_running():
            fleet.stop()
