"""The event recorder: a bounded queue that never blocks (drops and counts when full), a
writer thread that creates, patches, re-creates a vanished Event and retries transient
failures; and the Events as the API (embedded or real) stores them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from modules.kube.connection import KubeConnection
from modules.kube.correlator import Occurrence
from modules.kube.recorder import ApiSink, EventRecorder, WriteError
from tests.fakes import FakeClock, eventually
from tests.kube_fixtures import KubeTestCluster, unique

T0 = 1_700_000_000.0


class FakeSink:
    """Stores Events by (namespace, name); fails the next calls as scripted."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []  # (verb, name)
        self.failures: list[WriteError] = []  # raised by the next calls, first first
        self.gate = threading.Event()  # cleared: calls wait (the queue fills meanwhile)
        self.gate.set()

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self._call("create", event["metadata"]["name"])
        self.events[(namespace, event["metadata"]["name"])] = dict(event)

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._call("patch", name)
        if (namespace, name) not in self.events:
            raise WriteError(404, "NotFound")
        self.events[(namespace, name)].update(patch)

    def _call(self, verb: str, name: str) -> None:
        assert self.gate.wait(5)
        self.calls.append((verb, name))
        if self.failures:
            raise self.failures.pop(0)


def occurrence(message: str = "connected", name: str = "edge-1") -> Occurrence:
    return Occurrence(kind="Node", name=name, uid=name, type="Normal", reason="EdgeConnected",
                      message=message)  # fmt: skip


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def recorder(sink: FakeSink) -> Iterator[EventRecorder]:
    rec = EventRecorder(sink, owner="test", queue_size=4, instance="replica-0",
                        clock=FakeClock(T0))  # fmt: skip
    yield rec
    sink.gate.set()
    rec.stop()


def test_recording_past_the_queue_drops_and_counts_without_blocking(
    recorder: EventRecorder,
) -> None:
    assert [recorder.record(occurrence(f"m{i}")) for i in range(6)] == [True] * 4 + [False] * 2
    stats = recorder.stats()
    assert (stats["recorded"], stats["dropped_full"], stats["queued"]) == (4, 2, 4)


def test_the_writer_creates_then_patches_the_count(recorder: EventRecorder, sink: FakeSink) -> None:
    recorder.start()
    recorder.record(occurrence())
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    [(verb1, name), (verb2, name2)] = sink.calls
    assert (verb1, verb2, name2) == ("create", "patch", name)
    assert sink.events[("default", name)]["count"] == 2
    stats = recorder.stats()
    assert (stats["created"], stats["patched"], stats["failed"]) == (1, 1, 0)


def test_a_full_queue_while_the_writer_is_busy_drops_the_newest(
    recorder: EventRecorder, sink: FakeSink
) -> None:
    sink.gate.clear()
    recorder.start()
    recorder.record(occurrence("first"))
    assert eventually(lambda: recorder.stats()["queued"] == 0)  # taken, its write waits
    accepted = [recorder.record(occurrence(f"m{i}")) for i in range(6)]
    assert accepted == [True] * 4 + [False] * 2
    sink.gate.set()
    assert recorder.wait_idle(5)
    assert len(sink.events) == 5 and recorder.stats()["dropped_full"] == 2


def test_a_patch_of_a_vanished_event_creates_it_again(
    recorder: EventRecorder, sink: FakeSink
) -> None:
    recorder.start()
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    sink.events.clear()  # expired on the server
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    assert [verb for verb, _ in sink.calls] == ["create", "patch", "create"]
    [event] = sink.events.values()
    assert event["count"] == 2


def test_a_transient_failure_is_retried(recorder: EventRecorder, sink: FakeSink) -> None:
    sink.failures = [WriteError(None, "connection refused"), WriteError(503, "unavailable")]
    recorder.start()
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    assert [verb for verb, _ in sink.calls] == ["create"] * 3
    assert len(sink.events) == 1 and recorder.stats()["failed"] == 0


def test_a_refused_write_is_given_up_and_the_next_occurrence_creates_anew(
    recorder: EventRecorder, sink: FakeSink
) -> None:
    sink.failures = [WriteError(422, "Invalid")]
    recorder.start()
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    recorder.record(occurrence())
    assert recorder.wait_idle(5)
    assert [verb for verb, _ in sink.calls] == ["create", "create"]
    assert recorder.stats()["failed"] == 1
    [event] = sink.events.values()
    assert event["count"] == 1


def test_recorded_events_reach_the_api_with_their_count(kube: KubeTestCluster) -> None:
    node = unique("edge")
    api = KubeConnection(kube.kubeconfig_path).api_client()
    rec = EventRecorder(ApiSink(api), owner="test")
    rec.start()
    try:
        rec.record(occurrence("connected", node))
        rec.record(occurrence("connected", node))
        assert rec.wait_idle(10)
        found = kube.core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={node}"
        ).items
        assert [(e.reason, e.count, e.source.component) for e in found] == [
            ("EdgeConnected", 2, "cloudcore")
        ]
        assert found[0].reporting_instance == rec.instance
        assert rec.stats()["failed"] == 0
    finally:
        rec.stop()
        api.close()
        for event in kube.core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={node}"
        ).items:
            kube.core.delete_namespaced_event(event.metadata.name, "default")
