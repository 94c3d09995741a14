"""MetaStore on a real sqlite file: ordered, idempotent apply; survives reopen."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beehive.message import JsonValue, Message
from modules.metamanager.store import Applied, MetaStore, StoreError


def msg(
    operation: str = "update",
    rv: str = "1",
    *,
    uid: str = "u1",
    resource: str = "default/pod/nginx",
    content: JsonValue | None = None,
) -> Message:
    body: JsonValue = (
        content if content is not None else {"metadata": {"uid": uid, "name": "nginx"}}
    )
    return Message.new(
        source="edgecontroller",
        group="resource",
        operation=operation,
        resource=resource,
        resource_version=rv,
        content=body,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetaStore]:
    with MetaStore(tmp_path / "edge.db") as opened:
        yield opened


def test_an_insert_is_stored_under_the_trimmed_resource(store: MetaStore) -> None:
    assert store.apply(msg("insert", "5")) is Applied.STORED
    stored = store.get("default/pod/nginx")
    assert stored is not None
    assert (stored.type, stored.namespace, stored.name) == ("pod", "default", "nginx")
    assert (stored.uid, stored.resource_version) == ("u1", 5)
    assert stored.value == {"metadata": {"uid": "u1", "name": "nginx"}}


@pytest.mark.parametrize(
    ("first", "second", "verdict", "kept"),
    [
        pytest.param("5", "6", Applied.STORED, 6, id="newer replaces"),
        pytest.param("6", "5", Applied.STALE, 6, id="older is ignored"),
        pytest.param("6", "6", Applied.STALE, 6, id="equal is ignored"),
        pytest.param("9", "10", Applied.STORED, 10, id="compared as numbers"),
    ],
)
def test_updates_apply_in_resource_version_order(
    store: MetaStore, first: str, second: str, verdict: Applied, kept: int
) -> None:
    store.apply(msg("update", first))
    assert store.apply(msg("update", second)) is verdict
    stored = store.get("default/pod/nginx")
    assert stored is not None and stored.resource_version == kept


def test_applying_the_same_message_twice_changes_nothing(store: MetaStore) -> None:
    message = msg("insert", "3")
    assert store.apply(message).stored
    assert not store.apply(message).stored


def test_a_delete_removes_and_a_late_update_does_not_resurrect(store: MetaStore) -> None:
    store.apply(msg("insert", "5"))
    assert store.apply(msg("delete", "7")) is Applied.DELETED
    assert store.get("default/pod/nginx") is None
    assert store.apply(msg("update", "6")) is Applied.GONE
    assert store.apply(msg("update", "8")) is Applied.GONE
    assert store.apply(msg("delete", "7")) is Applied.ABSENT


def test_a_delete_of_the_old_uid_after_the_recreate_keeps_the_new_object(store: MetaStore) -> None:
    # A StatefulSet pod: same name, new uid; the insert overtook the delete (PR #4631).
    store.apply(msg("insert", "5", uid="old"))
    assert store.apply(msg("insert", "9", uid="new")) is Applied.STORED
    assert store.apply(msg("delete", "6", uid="old")) is Applied.ABSENT
    stored = store.get("default/pod/nginx")
    assert stored is not None and stored.uid == "new"


def test_a_recreate_after_the_delete_is_stored(store: MetaStore) -> None:
    store.apply(msg("insert", "5", uid="old"))
    store.apply(msg("delete", "6", uid="old"))
    assert store.apply(msg("insert", "9", uid="new")) is Applied.STORED


def test_a_late_update_of_the_old_uid_does_not_replace_the_new_object(store: MetaStore) -> None:
    store.apply(msg("insert", "9", uid="new"))
    assert store.apply(msg("update", "6", uid="old")) is Applied.STALE


def test_a_delete_without_object_removes_by_key(store: MetaStore) -> None:
    node = "null/node/edge-1"
    store.apply(msg("update", "3", resource=node, content={"metadata": {"uid": "n"}}))
    delete = Message.new(operation="delete", resource=node)
    assert store.apply(delete) is Applied.DELETED
    assert store.apply(delete) is Applied.ABSENT


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(msg("update", "abc"), "not an unsigned 64-bit integer", id="non-numeric rv"),
        pytest.param(msg("update", ""), "not an unsigned 64-bit integer", id="update without rv"),
        pytest.param(msg("delete", "x"), "not an unsigned 64-bit integer", id="delete with bad rv"),
        pytest.param(msg("query"), "does not change the store", id="query"),
        pytest.param(msg("frobnicate"), "does not change the store", id="unknown operation"),
        pytest.param(msg(resource="default/pod"), "<namespace>/<type>/<name>", id="short resource"),
        pytest.param(msg(resource="default//x"), "<namespace>/<type>/<name>", id="empty type"),
    ],
)
def test_messages_the_store_cannot_apply_raise(
    store: MetaStore, message: Message, reason: str
) -> None:
    with pytest.raises(StoreError, match=reason):
        store.apply(message)
    assert store.list_objects() == []


def test_the_version_may_come_from_the_object(store: MetaStore) -> None:
    message = msg("update", "", content={"metadata": {"uid": "u", "resourceVersion": "4"}})
    assert store.apply(message) is Applied.STORED


def test_a_missing_uid_is_stored_as_empty(store: MetaStore) -> None:
    assert store.apply(msg("update", "2", content={"data": {"a": "b"}})) is Applied.STORED
    stored = store.get("default/pod/nginx")
    assert stored is not None and stored.uid == ""


def test_objects_are_listed_by_key_and_by_type(store: MetaStore) -> None:
    store.apply(msg("insert", "1", uid="p", resource="default/pod/b"))
    store.apply(msg("insert", "1", uid="c", resource="default/configmap/a"))
    assert [o.key for o in store.list_objects()] == ["default/configmap/a", "default/pod/b"]
    assert [o.key for o in store.list_objects("pod")] == ["default/pod/b"]


def test_the_store_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    with MetaStore(path) as first:
        first.apply(msg("insert", "5"))
        first.apply(msg("insert", "1", uid="gone", resource="default/pod/old"))
        first.apply(msg("delete", "2", uid="gone", resource="default/pod/old"))
    with MetaStore(path) as second:
        assert [o.key for o in second.list_objects()] == ["default/pod/nginx"]
        assert second.apply(msg("update", "4")) is Applied.STALE
        assert second.apply(msg("update", "3", uid="gone", resource="default/pod/old")) is (
            Applied.GONE
        )


def test_tombstones_are_bounded(tmp_path: Path) -> None:
    with MetaStore(tmp_path / "edge.db", max_tombstones=1) as store:
        for uid in ("a", "b"):
            store.apply(msg("delete", "5", uid=uid, resource=f"default/pod/{uid}"))
        assert store.apply(msg("update", "6", uid="a", resource="default/pod/a")).stored
        assert not store.apply(msg("update", "6", uid="b", resource="default/pod/b")).stored


def test_a_file_that_is_not_a_database_raises(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        MetaStore(path)


versions = st.lists(st.tuples(st.integers(1, 30), st.booleans()), max_size=30)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(versions, st.randoms(use_true_random=False))
def test_any_order_of_one_objects_versions_ends_in_the_newest(
    tmp_path: Path, changes: list[tuple[int, bool]], rng: random.Random
) -> None:
    """Shuffled delivery, duplicates included, converges to what in-order delivery gives."""
    ordered = [msg("delete" if delete else "update", str(rv)) for rv, delete in changes]
    shuffled = ordered + ordered[: len(ordered) // 2]
    rng.shuffle(shuffled)
    with MetaStore(tmp_path / f"{uuid.uuid4().hex}.db") as store:  # fresh per example
        for message in shuffled:
            store.apply(message)
        result = store.get("default/pod/nginx")
    if any(delete for _, delete in changes):
        assert result is None
    elif changes:
        assert result is not None
        assert result.resource_version == max(rv for rv, _ in changes)


def _nested(depth: int) -> JsonValue:
    content: JsonValue = {"metadata": {"uid": "u9", "name": "deep"}}
    inner: JsonValue = "bottom"
    for _ in range(depth):
        inner = {"x": inner}
    assert isinstance(content, dict)
    content["spec"] = inner
    return content


@pytest.mark.parametrize(
    ("message", "says"),
    [
        pytest.param(msg(rv="9" * 20), "64-bit", id="resourceVersion of 20 digits"),
        pytest.param(msg(rv="7" * 5000), "64-bit", id="resourceVersion of 5000 digits"),
        pytest.param(
            msg(resource="default/pod/bad\ud800"),
            "lone surrogate",
            id="lone surrogate in the resource",
        ),
        pytest.param(
            msg(rv="7", content=_nested(3000)), "cannot encode", id="content too deep to encode"
        ),
        pytest.param(msg(content="a string"), "not an object", id="string content"),
        pytest.param(
            Message.new(operation="insert", resource="default/pod/n", resource_version="3"),
            "not an object",
            id="null content",
        ),
    ],
)
def test_what_a_hostile_cloud_sends_is_refused_and_the_store_stays_as_it_was(
    store: MetaStore, message: Message, says: str
) -> None:
    assert store.apply(msg(rv="5")) is Applied.STORED
    with pytest.raises(StoreError, match=says):
        store.apply(message)
    [kept] = store.list_objects()
    assert (kept.key, kept.resource_version) == ("default/pod/nginx", 5)
    assert store.apply(msg(rv="6")) is Applied.STORED  # and it goes on working
