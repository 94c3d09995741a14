"""When a node status report need not be written (`nodestatus.unchanged`): no I/O."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from modules.edgecontroller import nodestatus

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.UTC)
EVERY = 60.0


def stamp(seconds_ago: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def held(seconds_ago: float = 10) -> dict[str, Any]:
    """The Node's status as the watch has it: written `seconds_ago`, plus a field the
    report does not carry (another writer's)."""
    return {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "EdgeReady",
             "lastHeartbeatTime": stamp(seconds_ago), "lastTransitionTime": stamp(3600)},
            {"type": "MemoryPressure", "status": "False",
             "lastHeartbeatTime": stamp(seconds_ago), "lastTransitionTime": stamp(3600)},
        ],
        "nodeInfo": {"kubeletVersion": "v1.30.0"},
        "capacity": {"cpu": "4", "pods": "110"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10350}},
    }  # fmt: skip


def report() -> dict[str, Any]:
    """What the edge sends again: the same, its own heartbeat stamps."""
    status = copy.deepcopy(held())
    del status["daemonEndpoints"]
    for condition in status["conditions"]:
        condition["lastHeartbeatTime"] = stamp(0)
    return status


def test_a_report_changing_only_the_heartbeat_is_not_written_while_it_is_young() -> None:
    assert nodestatus.unchanged(held(10), report(), NOW, EVERY)
    assert nodestatus.unchanged(held(59), report(), NOW, EVERY)


def test_it_is_written_once_the_heartbeat_the_node_holds_is_as_old_as_the_interval() -> None:
    assert not nodestatus.unchanged(held(60), report(), NOW, EVERY)
    older = held(10)
    older["conditions"][1]["lastHeartbeatTime"] = stamp(61)  # the oldest counts
    assert not nodestatus.unchanged(older, report(), NOW, EVERY)


def test_any_change_is_written() -> None:
    changes = []
    for change in (
        lambda s: s["conditions"][0].update(status="False"),
        lambda s: s["conditions"][0].update(lastTransitionTime=stamp(0)),
        lambda s: s["conditions"].pop(),
        lambda s: s["capacity"].update(cpu="8"),
        lambda s: s.update(addresses=[{"type": "InternalIP", "address": "10.0.0.9"}]),
    ):
        status = report()
        change(status)
        changes.append(nodestatus.unchanged(held(10), status, NOW, EVERY))
    assert changes == [False] * 5


def test_an_interval_of_zero_writes_every_report() -> None:
    assert not nodestatus.unchanged(held(1), report(), NOW, 0)


def test_what_cannot_be_compared_is_written() -> None:
    unreadable = held(10)
    unreadable["conditions"][0]["lastHeartbeatTime"] = "yesterday"
    missing = held(10)
    del missing["conditions"][0]["lastHeartbeatTime"]
    naive = held(10)
    naive["conditions"][0]["lastHeartbeatTime"] = "2026-12-07T11:59:50"
    for status in (None, "status", unreadable, missing, naive):
        assert not nodestatus.unchanged(status, report(), NOW, EVERY)
    bad_report = report()
    bad_report["conditions"] = "Ready"
    assert not nodestatus.unchanged(held(10), bad_report, NOW, EVERY)


def test_fields_the_report_leaves_out_are_kept_by_the_merge_and_change_nothing() -> None:
    """The API writes Go's zero values the report never sent (a real server's
    ``nodeInfo`` has every field; a condition's unset time is null)."""
    stored = held(10)
    stored["nodeInfo"] |= {"machineID": "", "bootID": ""}
    stored["conditions"][1]["message"] = None
    assert nodestatus.unchanged(stored, report(), NOW, EVERY)
    removing = report()
    removing["capacity"] = {"cpu": None}  # a merge patch's null removes the key
    assert not nodestatus.unchanged(stored, removing, NOW, EVERY)
    stored["addresses"] = None
    same = report() | {"addresses": None}
    assert nodestatus.unchanged(stored, same, NOW, EVERY)
    assert not nodestatus.unchanged(stored, report() | {"capacity": ["4"]}, NOW, EVERY)
    assert not nodestatus.unchanged(stored, report() | {"images": [{"names": ["a"]}]}, NOW, EVERY)


def test_a_number_is_not_the_string_of_it() -> None:
    stored = held(10)
    stored["capacity"]["pods"] = 110
    assert not nodestatus.unchanged(stored, report(), NOW, EVERY)
