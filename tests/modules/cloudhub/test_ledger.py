"""Ledger: which writes coalesced changes become, without an API server (plans only)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from modules.cloudhub import ledger, objects, syncrecord
from modules.cloudhub.syncrecord import Held


def ref(uid: str, name: str = "", namespace: str = "default") -> objects.ObjectRef:
    return objects.ObjectRef(uid, namespace, "pod", name or f"p-{uid}", "v1", "Pod")


def book(**kwargs: Any) -> ledger.Ledger:
    kwargs.setdefault("shards", 1)
    kwargs.setdefault("part_bytes", 1 << 20)
    return ledger.Ledger(**kwargs)


def write_all(book: ledger.Ledger, rv: int = 1) -> list[ledger.Plan]:
    """Plan and settle every dirty record, as a writer round whose writes all succeed."""
    plans = [book.plan(part) for part in book.dirty()]
    for plan in plans:
        book.settle(plan, str(rv))
    return plans


def entries(plan: ledger.Plan) -> dict[str, dict[str, str | None] | None]:
    """node -> uid -> encoded entry (None: removed) that a plan sends."""
    assert plan.body is not None
    nodes = plan.body["spec"]["nodes"]
    return {n: (None if uids is None else dict(uids)) for n, uids in nodes.items()}


def test_many_acks_of_many_objects_become_one_create_with_the_newest_versions() -> None:
    ledger_ = book()
    for uid in ("a", "b"):
        ledger_.apply(objects.Ensure("n1", ref(uid)), 0.0)
        for rv in (3, 7, 5):
            ledger_.apply(objects.Acked("n1", ref(uid), rv), 0.0)
    [plan] = write_all(ledger_)
    assert plan.verb == "create"
    assert entries(plan) == {"n1": {"a": "7|default|Pod|||p-a", "b": "7|default|Pod|||p-b"}}


def test_what_waits_is_bounded_by_the_objects_not_by_the_acks() -> None:
    ledger_ = book(shards=4)
    for rv in range(1, 201):  # 200 acks of each of 50 objects on 10 nodes
        for node in range(10):
            for uid in range(5):
                ledger_.apply(objects.Acked(f"n{node}", ref(f"u{node}-{uid}"), rv), 0.0)
    records, changes, _ = ledger_.counts()
    assert records <= 4 and changes == 50


def test_an_update_patches_only_what_changed_with_the_version_it_was_read_at() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 1), 0.0)
    ledger_.apply(objects.Acked("n1", ref("b"), 1), 0.0)
    write_all(ledger_, rv=40)
    ledger_.apply(objects.Acked("n1", ref("b"), 2), 0.0)
    [plan] = write_all(ledger_)
    assert plan.verb == "patch"
    assert plan.body == {
        "metadata": {"resourceVersion": "40", "labels": {syncrecord.SHARD_LABEL: "0"}},
        "spec": {"nodes": {"n1": {"b": "2|default|Pod|||p-b"}}},
    }


def test_a_queued_delete_makes_newer_versions_moot_and_the_acked_delete_removes_the_entry() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 1), 0.0)
    ledger_.apply(objects.Acked("n1", ref("b"), 1), 0.0)
    write_all(ledger_)
    ledger_.apply(objects.Acked("n1", ref("a"), 2), 0.0)
    ledger_.apply(objects.Deleting("n1", ref("a")), 0.0)
    ledger_.apply(objects.Acked("n1", ref("a"), 3), 0.0)
    assert [ledger_.plan(p).verb for p in ledger_.dirty()] == [""]
    ledger_.apply(objects.Forget("n1", ref("a")), 0.0)
    [plan] = write_all(ledger_)
    assert entries(plan) == {"n1": {"a": None}}


def test_the_last_entry_going_deletes_the_record_and_a_node_without_entries_goes() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 1), 0.0)
    ledger_.apply(objects.Acked("n2", ref("b"), 1), 0.0)
    write_all(ledger_, rv=9)
    ledger_.apply(objects.Forget("n1", ref("a")), 0.0)
    [plan] = write_all(ledger_)
    assert entries(plan) == {"n1": None}
    ledger_.apply(objects.Forget("n2", ref("b")), 0.0)
    [plan] = write_all(ledger_)
    assert (plan.verb, plan.body) == ("delete", {"preconditions": {"resourceVersion": "1"}})


def test_an_object_queued_and_deleted_before_its_record_was_written_costs_no_write() -> None:
    ledger_ = book()
    ledger_.apply(objects.Ensure("n1", ref("a")), 0.0)
    ledger_.apply(objects.Acked("n1", ref("a"), 4), 0.0)
    ledger_.apply(objects.Deleting("n1", ref("a")), 0.0)
    ledger_.apply(objects.Forget("n1", ref("a")), 0.0)
    assert [plan.verb for plan in write_all(ledger_)] == [""]
    assert ledger_.counts()[:2] == (0, 0)


def test_an_object_sent_again_after_its_acked_delete_is_not_acked_until_acked_again() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    write_all(ledger_)
    ledger_.apply(objects.Forget("n1", ref("a")), 0.0)
    ledger_.apply(objects.Ensure("n1", ref("a")), 0.0)  # a configmap, needed again
    [plan] = write_all(ledger_)
    assert entries(plan) == {"n1": {"a": "|default|Pod|||p-a"}}
    assert ledger_.held("n1")["a"].rv is None


def test_changes_made_while_a_write_is_in_flight_stay_pending() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 1), 0.0)
    [part] = ledger_.dirty()
    plan = ledger_.plan(part)
    ledger_.apply(objects.Acked("n1", ref("a"), 2), 1.0)  # merged while the create is sent
    ledger_.settle(plan, "7")
    [again] = write_all(ledger_)
    assert (again.verb, entries(again)) == ("patch", {"n1": {"a": "2|default|Pod|||p-a"}})


def test_a_conflict_merges_into_what_someone_else_wrote_and_versions_only_go_up() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    ledger_.apply(objects.Acked("n1", ref("b"), 5), 0.0)
    [part] = ledger_.dirty()
    ledger_.settle(ledger_.plan(part), "10")
    ledger_.apply(objects.Acked("n1", ref("a"), 6), 0.0)
    ledger_.apply(objects.Acked("n1", ref("b"), 6), 0.0)
    theirs = {"n1": {"a": Held(ref("a"), 9), "b": Held(ref("b"), 5)},
              "n2": {"c": Held(ref("c"), 1)}}  # fmt: skip
    ledger_.refresh(part, syncrecord.Record(part.name, 0, 0, "12", theirs, broken=False), 0.0)
    plan = ledger_.plan(part)
    assert plan.body == {
        "metadata": {"resourceVersion": "12", "labels": {syncrecord.SHARD_LABEL: "0"}},
        "spec": {"nodes": {"n1": {"b": "6|default|Pod|||p-b"}}},  # a stays at their 9
    }
    assert plan.after["n2"] == theirs["n2"]


def test_a_record_deleted_by_someone_else_is_created_again_with_what_is_known() -> None:
    ledger_ = book()
    ledger_.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    [part] = ledger_.dirty()
    ledger_.settle(ledger_.plan(part), "10")
    ledger_.apply(objects.Acked("n1", ref("b"), 1), 0.0)
    ledger_.refresh(part, None, 0.0)  # the patch found no record
    plan = ledger_.plan(part)
    assert plan.verb == "create"
    assert entries(plan) == {"n1": {"a": "5|default|Pod|||p-a", "b": "1|default|Pod|||p-b"}}


def test_a_full_record_spills_into_the_next_part_of_the_shard() -> None:
    ledger_ = book(part_bytes=250)
    for uid in ("a", "b", "c", "d"):
        ledger_.apply(objects.Acked("n1", ref(uid, name="p" * 40), 1), 0.0)
    names = sorted(plan.part.name for plan in write_all(ledger_))
    assert names == ["shard-0-0", "shard-0-1"]


def test_the_size_kept_write_by_write_is_the_size_of_what_each_record_holds() -> None:
    rng = random.Random(7)
    ledger_ = book(shards=2, part_bytes=400)
    parts: dict[str, ledger.Part] = {}
    for round_ in range(60):
        for _ in range(rng.randint(1, 12)):
            node, uid = f"n{rng.randint(0, 3)}", f"u{rng.randint(0, 15)}"
            op = rng.choice(["ack", "ack", "ensure", "deleting", "forget"])
            if op == "ack":
                ledger_.apply(
                    objects.Acked(node, ref(uid), rng.randint(1, 10 ** rng.randint(1, 12))), 0.0
                )
            elif op == "ensure":
                ledger_.apply(objects.Ensure(node, ref(uid)), 0.0)
            elif op == "deleting":
                ledger_.apply(objects.Deleting(node, ref(uid)), 0.0)
            else:
                ledger_.apply(objects.Forget(node, ref(uid)), 0.0)
        parts.update((plan.part.name, plan.part) for plan in write_all(ledger_, rv=round_))
    assert len(parts) > 2  # records spilled over into further parts
    for part in parts.values():
        assert part.stored_size == ledger.record_size(part.stored), part.name


def test_restore_merges_duplicates_and_kubeedge_records_and_drops_deleted_nodes() -> None:
    ledger_ = book(shards=2)
    first = {"n1": {"a": Held(ref("a"), 5)}, "gone": {"g": Held(ref("g"), 1)}}
    second = {"n1": {"a": Held(ref("a"), 8)}}  # a second writer put it here too
    records = [
        syncrecord.Record("shard-0-0", 0, 0, "3", first, broken=False),
        syncrecord.Record("shard-1-0", 1, 0, "4", second, broken=False),
    ]
    legacy = [
        syncrecord.Legacy(objects.Restored("n1", ref("b"), 7), "/b"),
        syncrecord.Legacy(objects.Restored("n1", ref("a"), 6), "/a"),
        syncrecord.Legacy(objects.Restored("gone", ref("h"), 2), "/h"),
    ]
    restored = ledger_.restore(records, legacy, {"n1"}, 0.0)
    assert sorted((r.node_id, r.ref.uid, r.resource_version) for r in restored) == [
        ("n1", "a", 8),
        ("n1", "b", 7),
    ]
    assert ledger_.drop_stale(0.0) == 1  # the older copy of a (the writer does this alone)
    plans = {plan.part.name: plan for plan in write_all(ledger_)}
    assert syncrecord.shard_of("n1", 2) == 0  # b, new, goes where n1's entries go
    assert entries(plans["shard-0-0"]) == {
        "gone": None,
        "n1": {"a": "8|default|Pod|||p-a", "b": "7|default|Pod|||p-b"},
    }
    assert plans["shard-1-0"].verb == "delete"  # the duplicate was all it held
    assert ledger_.held("n1").keys() == {"a", "b"}
    assert ledger_.written(("n1", "b")) and ledger_.written(("gone", "h"))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("12|default|Pod|||web", id="a pod"),
        pytest.param("|kube-system|ConfigMap|||cm", id="queued, not acked"),
        pytest.param("3|null|Node|||edge-1", id="a cluster-scoped object"),
        pytest.param("3|ns|Deployment|apps/v1|deploy|a|b", id="a name with the separator"),
    ],
)
def test_entries_read_back_as_written(text: str) -> None:
    held = syncrecord.decode("u1", text)
    assert held is not None
    assert syncrecord.encode(held) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x|default|Pod|||web", id="a version that is not a number"),
        pytest.param("1|default|Pod", id="too few fields"),
        pytest.param("1||Pod|||web", id="no namespace"),
        pytest.param(7, id="not a string"),
    ],
)
def test_malformed_entries_are_not_read(text: object) -> None:
    assert syncrecord.decode("u1", text) is None


# Several replicas: each writes into its own parts.

A, B = "aaaaaaaa", "bbbbbbbb"  # two replicas' writer tokens


def record_of(plan: ledger.Plan, rv: str = "1") -> syncrecord.Record:
    """The record a plan wrote, as a read would return it."""
    found = syncrecord.parse({"metadata": {"name": plan.part.name, "resourceVersion": rv},
                              "spec": {"nodes": syncrecord.body(plan.part.name, plan.after)
                                       ["spec"]["nodes"]}})  # fmt: skip
    assert found is not None
    return found


def test_each_replica_places_new_entries_in_its_own_parts_of_the_shard() -> None:
    first, second = book(writer=A), book(writer=B)
    first.apply(objects.Acked("n1", ref("a"), 3), 0.0)
    second.apply(objects.Acked("n2", ref("b"), 4), 0.0)
    [one], [two] = write_all(first), write_all(second)
    assert (one.part.name, two.part.name) == (f"shard-0-0-{A}", f"shard-0-0-{B}")
    assert one.verb == two.verb == "create"
    assert (record_of(one).writer, record_of(two).writer) == (A, B)


def test_a_taken_over_node_is_written_into_the_new_owners_part_only() -> None:
    old, new = book(writer=A), book(writer=B)
    old.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    old.apply(objects.Acked("n1", ref("b"), 5), 0.0)
    [written] = write_all(old)
    new.refresh_records([record_of(written)], 0.0)  # read when the node is claimed
    assert {uid: h.rv for uid, h in new.held("n1").items()} == {"a": 5, "b": 5}
    new.apply(objects.Ensure("n1", ref("a")), 0.0)  # sent again: nothing new to write
    new.apply(objects.Acked("n1", ref("b"), 4), 0.0)  # a late, older ack: nothing either
    assert new.dirty() == []
    new.apply(objects.Acked("n1", ref("b"), 9), 0.0)
    [plan] = write_all(new)
    assert plan.part.name == f"shard-0-0-{B}" and plan.verb == "create"
    assert entries(plan) == {"n1": {"b": "9|default|Pod|||p-b"}}  # nothing to A's part
    assert {uid: h.rv for uid, h in new.held("n1").items()} == {"a": 5, "b": 9}
    new.apply(objects.Acked("n1", ref("b"), 7), 0.0)  # never below what either part holds
    assert new.dirty() == []


def test_a_new_entry_never_goes_below_a_copy_in_another_part() -> None:
    old, new = book(writer=A), book(writer=B)
    old.apply(objects.Acked("n1", ref("a"), 8), 0.0)
    [written] = write_all(old)
    new.apply(objects.Acked("n1", ref("a"), 3), 0.0)  # before the read: placed in B's part
    new.refresh_records([record_of(written)], 0.0)
    assert new.held("n1")["a"].rv == 8
    [plan] = write_all(new)
    assert entries(plan) == {"n1": {"a": "8|default|Pod|||p-a"}}


def test_the_delete_of_a_moved_entry_removes_the_copy_left_in_the_old_part() -> None:
    old, new = book(writer=A), book(writer=B)
    old.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    old.apply(objects.Acked("n1", ref("c"), 5), 0.0)
    [written] = write_all(old)
    new.refresh_records([record_of(written, rv="11")], 0.0)
    new.apply(objects.Acked("n1", ref("a"), 6), 0.0)
    write_all(new, rv=12)
    new.apply(objects.Deleting("n1", ref("a")), 0.0)
    new.apply(objects.Forget("n1", ref("a")), 0.0)  # the edge acked the delete
    plans = {plan.part.name: plan for plan in write_all(new, rv=13)}
    assert entries(plans[f"shard-0-0-{A}"]) == {"n1": {"a": None}}
    body = plans[f"shard-0-0-{A}"].body
    assert body is not None and body["metadata"]["resourceVersion"] == "11"
    assert plans[f"shard-0-0-{B}"].verb == "delete"  # a was all it held
    assert new.held("n1").keys() == {"c"}


def test_the_cleanup_keeps_the_newest_copy_and_removes_the_older() -> None:
    first, second, leader = book(writer=A), book(writer=B), book(writer="cccccccc")
    first.apply(objects.Acked("n1", ref("a"), 5), 0.0)
    first.apply(objects.Acked("n1", ref("b"), 9), 0.0)
    second.apply(objects.Acked("n1", ref("a"), 7), 0.0)
    second.apply(objects.Acked("n1", ref("b"), 2), 0.0)
    [one], [two] = write_all(first), write_all(second)
    leader.refresh_records([record_of(one), record_of(two)], 0.0)
    assert {uid: h.rv for uid, h in leader.held("n1").items()} == {"a": 7, "b": 9}
    assert leader.drop_stale(0.0) == 2
    plans = {plan.part.name: entries(plan) for plan in write_all(leader)}
    assert plans == {f"shard-0-0-{A}": {"n1": {"a": None}},
                     f"shard-0-0-{B}": {"n1": {"b": None}}}  # fmt: skip
    assert leader.drop_stale(0.0) == 0  # once
    assert {uid: h.rv for uid, h in leader.held("n1").items()} == {"a": 7, "b": 9}


@pytest.mark.parametrize(
    ("name", "where"),
    [("shard-3-0", (3, 0, "")), (f"shard-3-12-{A}", (3, 12, A)), ("shard-3-0-ABCDEF12", None),
     ("shard-3-0-abc", None), ("shard-3", None), ("shard-٣-0", None), ("shard-3-0-", None)],
)  # fmt: skip
def test_record_names_with_and_without_a_writer(
    name: str, where: tuple[int, int, str] | None
) -> None:
    assert syncrecord.parse_name(name) == where
    if where is not None:
        assert syncrecord.part_name(*where) == name
