"""The fleet against a cloudcore in this process (plain websocket): connecting,
receiving and acking, status reports, and faults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modules.fleet import Faults
from modules.metamanager.store import MetaStore
from tests.fakes import eventually
from tests.modules.fleet.conftest import WAIT, Cloud, FleetThread
from tests.modules.fleet.helpers import Expected, create_pods, patch_pods

pytestmark = pytest.mark.integration

StartFleet = Callable[..., FleetThread]


def ready(core: Any, name: str) -> bool:
    nodes = core.list_node(field_selector=f"metadata.name={name}").items
    conditions = nodes[0].status.conditions or [] if nodes else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def holding_pods(
    cloud: Cloud, start_fleet: StartFleet, per_node: int, **options: Any
) -> tuple[FleetThread, Expected]:
    """A fleet started with `options`, connected, and holding `per_node` new pods a node."""
    fleet = start_fleet(**options)
    assert fleet.wait_connected()
    expected = create_pods(cloud.core, fleet.options.node_names, per_node=per_node)
    assert fleet.holds(expected)
    return fleet, expected


def test_nodes_register_connect_and_report_ready_status(
    cloud: Cloud, start_fleet: StartFleet
) -> None:
    fleet = start_fleet(nodes=3)
    assert fleet.wait_connected()
    names = fleet.options.node_names
    assert eventually(lambda: all(ready(cloud.core, n) for n in names), timeout=WAIT)
    assert eventually(lambda: fleet.counter("status_reports") >= 2 * 3 + 3, timeout=WAIT)


def test_pods_created_through_the_api_are_stored_and_acked(
    cloud: Cloud, start_fleet: StartFleet
) -> None:
    fleet, _ = holding_pods(cloud, start_fleet, 2, nodes=3)
    summary = fleet.stop()
    assert summary["held"]["pod"] == 6
    assert summary["acks"] >= summary["stored"] >= 6
    assert summary["duplicates"] == 0 and summary["errors"] == 0


def test_reconnect_storm_converges_with_nothing_lost(cloud: Cloud, start_fleet: StartFleet) -> None:
    fleet = start_fleet(nodes=4)
    assert fleet.wait_connected()
    created = create_pods(cloud.core, fleet.options.node_names, per_node=2)
    assert fleet.holds(created)
    assert fleet.call(fleet.fleet.storm) == 4
    updated = patch_pods(cloud.core, created, "storm")  # while the sessions come back
    assert fleet.holds(updated)
    assert fleet.wait_connected()
    assert fleet.counter("connects") >= 8


def test_dropping_a_fraction_drops_only_that_share_and_they_come_back(
    start_fleet: StartFleet,
) -> None:
    fleet = start_fleet(nodes=4)
    assert fleet.wait_connected()
    assert fleet.call(lambda: fleet.fleet.drop(0.5)) == 2
    assert eventually(lambda: fleet.counter("connects") == 6, timeout=WAIT)
    assert fleet.wait_connected()


def test_withheld_acks_make_the_cloud_resend_until_acked(
    cloud: Cloud, start_fleet: StartFleet
) -> None:
    fleet, _ = holding_pods(cloud, start_fleet, 1, nodes=2, faults=Faults(withhold_acks=1.0))
    # Every first copy was withheld: the cloud resent each (same id) and that was acked.
    assert eventually(
        lambda: fleet.counter("acks") >= fleet.counter("acks_withheld") >= 2, timeout=WAIT
    )
    assert eventually(lambda: fleet.counter("duplicates") >= 2, timeout=WAIT)


def test_delayed_acks_still_arrive(cloud: Cloud, start_fleet: StartFleet) -> None:
    fleet, _ = holding_pods(cloud, start_fleet, 1, nodes=2, faults=Faults(ack_delay=0.2))
    assert eventually(lambda: fleet.counter("acks") >= fleet.counter("stored"), timeout=WAIT)


def test_malformed_frames_from_one_node_leave_the_others_untouched(
    cloud: Cloud, start_fleet: StartFleet
) -> None:
    fleet = start_fleet(nodes=3, faults=Faults(malformed_nodes=1))
    assert eventually(lambda: fleet.counter("malformed_sent") >= 3, timeout=WAIT)
    healthy = fleet.options.node_names[1:]
    expected = create_pods(cloud.core, healthy, per_node=2)
    assert fleet.holds(expected)
    sessions = fleet.call(lambda: {s.node_id: s.core.connects for s in fleet.fleet.sessions})
    assert all(sessions[name] == 1 for name in healthy)


def test_the_sqlite_store_keeps_what_each_node_acked_on_disk(
    cloud: Cloud, start_fleet: StartFleet, tmp_path: Path
) -> None:
    fleet, expected = holding_pods(
        cloud, start_fleet, 2, nodes=2, store="sqlite", store_dir=tmp_path / "store"
    )
    fleet.stop()
    for node, keys in expected.items():
        with MetaStore(tmp_path / "store" / f"{node}.db") as stored:
            rows = {o.key: o.resource_version for o in stored.list_objects("pod")}
        assert rows == keys


def test_stored_pods_are_reported_running(cloud: Cloud, start_fleet: StartFleet) -> None:
    fleet, expected = holding_pods(cloud, start_fleet, 2, nodes=1)

    def running() -> bool:
        pods = [cloud.core.read_namespaced_pod(k.split("/")[2], "default") for k in
                expected[fleet.options.node_names[0]]]  # fmt: skip
        return all(p.status.phase == "Running" for p in pods)

    assert eventually(running, timeout=WAIT)


def test_a_pod_deleted_gracefully_is_reported_stopped_and_goes(
    cloud: Cloud, start_fleet: StartFleet
) -> None:
    fleet, expected = holding_pods(cloud, start_fleet, 1, nodes=1)
    [key] = expected[fleet.options.node_names[0]]
    name = key.split("/")[2]
    cloud.core.delete_namespaced_pod(name, "default")  # graceful: the node must confirm

    def gone() -> bool:
        return not cloud.core.list_namespaced_pod(
            "default", field_selector=f"metadata.name={name}"
        ).items

    assert eventually(gone, timeout=WAIT)
