"""ObjectSyncWriter: which API calls coalesced work turns into (raw requests recorded)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modules.cloudhub import objects, objectsync
from modules.kube import raw

REF = objects.ObjectRef("u1", "default", "pod", "p1", "v1", "Pod")
Call = tuple[str, str]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    made: list[Call] = []

    def request(_api: Any, method: str, path: str, **_: Any) -> None:
        made.append((method, path.rsplit("/", 1)[-1]))

    monkeypatch.setattr(raw, "request", request)
    return made


@pytest.fixture
def writer() -> Iterator[objectsync.ObjectSyncWriter]:
    found = objectsync.ObjectSyncWriter(None, batch_delay=0.0)  # type: ignore[arg-type]
    found.start()
    yield found
    found.stop()


def write(writer: objectsync.ObjectSyncWriter, ops: list[objects.SyncOp]) -> None:
    writer.submit(ops)
    assert writer.flush(2.0)


def test_create_and_acks_become_one_create_and_one_status_write(
    writer: objectsync.ObjectSyncWriter, calls: list[Call]
) -> None:
    acks: list[objects.SyncOp] = [objects.Acked("n1", REF, rv) for rv in (3, 5, 4)]
    write(writer, [objects.Ensure("n1", REF), *acks])
    assert calls == [("POST", "objectsyncs"), ("PATCH", "status")]


def test_a_queued_delete_cancels_status_writes(
    writer: objectsync.ObjectSyncWriter, calls: list[Call]
) -> None:
    ops: list[objects.SyncOp] = [
        objects.Ensure("n1", REF),
        objects.Acked("n1", REF, 3),
        objects.Deleting("n1", REF),
        objects.Acked("n1", REF, 4),
    ]
    write(writer, ops)
    assert calls == [("POST", "objectsyncs")]


def test_a_record_never_written_is_not_deleted_either(
    writer: objectsync.ObjectSyncWriter, calls: list[Call]
) -> None:
    write(writer, [objects.Ensure("n1", REF), objects.Forget("n1", REF)])
    assert calls == []


def test_a_written_record_is_deleted(
    writer: objectsync.ObjectSyncWriter, calls: list[Call]
) -> None:
    write(writer, [objects.Ensure("n1", REF)])
    write(writer, [objects.Deleting("n1", REF), objects.Forget("n1", REF)])
    assert calls == [("POST", "objectsyncs"), ("DELETE", "n1.u1")]
