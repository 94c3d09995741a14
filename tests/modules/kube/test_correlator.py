"""The event correlator with the time passed in: creates, count patches, aggregation of
similar events, the spam filter (client-go's EventCorrelator defaults)."""

from __future__ import annotations

import pytest

from modules.kube import correlator
from modules.kube.correlator import EventCorrelator, Occurrence, Write

T0 = 1_700_000_000.0  # epoch seconds


def node_event(message: str = "connected", *, name: str = "edge-1", reason: str = "EdgeConnected",
               kind: str = "Node", type: str = "Normal") -> Occurrence:  # fmt: skip
    return Occurrence(kind=kind, name=name, uid=name, type=type, reason=reason, message=message)


def make() -> EventCorrelator:
    return EventCorrelator(component="cloudcore", instance="replica-0")


def written(c: EventCorrelator, occurrence: Occurrence, at: float) -> Write:
    write = c.correlate(occurrence, at)
    assert write is not None
    return write


def test_a_first_occurrence_is_created_in_default_as_the_kubelet_writes_node_events() -> None:
    write = written(make(), node_event(), T0)
    assert write.patch is None and write.namespace == "default"
    assert write.name.startswith("edge-1.")
    event = write.event
    assert event["involvedObject"] == {"kind": "Node", "name": "edge-1", "uid": "edge-1",
                                       "apiVersion": "v1"}  # fmt: skip
    assert (event["reason"], event["type"], event["message"], event["count"]) == (
        "EdgeConnected", "Normal", "connected", 1)  # fmt: skip
    assert event["source"] == {"component": "cloudcore"}
    assert (event["reportingComponent"], event["reportingInstance"]) == ("cloudcore", "replica-0")
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"


def test_the_same_event_again_patches_count_and_last_timestamp() -> None:
    c = make()
    first = written(c, node_event(), T0)
    second = written(c, node_event(), T0 + 60)
    third = written(c, node_event(), T0 + 120)
    assert second.name == third.name == first.name
    assert second.patch == {"count": 2, "lastTimestamp": "2023-11-14T22:14:20Z",
                            "message": "connected"}  # fmt: skip
    assert third.patch is not None and third.patch["count"] == 3
    assert third.event["firstTimestamp"] == first.event["firstTimestamp"]
    assert third.event["count"] == 3


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(node_event("closed by the edge"), id="another message"),
        pytest.param(node_event(reason="EdgeDisconnected"), id="another reason"),
        pytest.param(node_event(type="Warning"), id="another type"),
        pytest.param(node_event(name="edge-2"), id="another node"),
    ],
)
def test_an_event_differing_in_message_reason_type_or_object_is_a_new_event(
    other: Occurrence,
) -> None:
    c = make()
    first = written(c, node_event(), T0)
    write = written(c, other, T0 + 1)
    assert write.patch is None and write.name != first.name


def test_a_repeat_after_ten_quiet_minutes_is_a_new_event() -> None:
    c = make()
    first = written(c, node_event(), T0)
    assert written(c, node_event(), T0 + 599).patch is not None  # within 10 min of the last
    later = written(c, node_event(), T0 + 599 + 601)
    assert later.patch is None and later.name != first.name
    assert later.event["count"] == 1


def test_the_tenth_distinct_message_of_similar_events_is_combined_and_then_patched() -> None:
    c = make()
    writes = [written(c, node_event(f"refused: reason {i}", reason="EdgeRefused"), T0 + i)
              for i in range(12)]  # fmt: skip
    assert all(w.patch is None for w in writes[:9])
    assert len({w.name for w in writes[:9]}) == 9
    combined = writes[9]
    assert combined.patch is None
    assert combined.event["message"] == "(combined from similar events): refused: reason 9"
    for n, later in enumerate(writes[10:], start=2):
        assert later.name == combined.name
        assert later.patch == {"count": n, "lastTimestamp": later.event["lastTimestamp"],
                               "message": f"(combined from similar events): refused: reason {n + 8}"}  # fmt: skip
    assert c.combined == 3


def test_similar_events_ten_minutes_apart_are_not_combined() -> None:
    c = make()
    for i in range(9):
        written(c, node_event(f"m{i}", reason="EdgeRefused"), T0)
    write = written(c, node_event("m9", reason="EdgeRefused"), T0 + 601)
    assert write.event["message"] == "m9"


def test_the_spam_filter_lets_25_through_then_one_per_five_minutes() -> None:
    c = make()
    results = [c.correlate(node_event(f"m{i % 3}"), T0) for i in range(30)]
    assert sum(r is not None for r in results) == 25
    assert c.spam_dropped == 5
    assert c.correlate(node_event("m0"), T0 + 299) is None
    passed = c.correlate(node_event("m0"), T0 + 300)
    assert passed is not None and passed.patch is not None
    # Dropped repeats still count, as in client-go: 10 at T0 (m0), one dropped at +299.
    assert passed.patch["count"] == 12
    assert c.correlate(node_event("m0"), T0 + 301) is None


def test_the_spam_filter_is_per_object() -> None:
    c = make()
    for _ in range(25):
        assert c.correlate(node_event(), T0) is not None
    assert c.correlate(node_event(), T0) is None
    assert c.correlate(node_event(name="edge-2"), T0) is not None


def test_a_failed_write_makes_the_next_occurrence_a_create() -> None:
    c = make()
    first = written(c, node_event(), T0)
    c.failed(first)
    again = written(c, node_event(), T0 + 1)
    assert again.patch is None and again.name != first.name


def test_event_names_are_unique_even_at_the_same_instant() -> None:
    c = make()
    names = {written(c, node_event(name="edge-1", reason=f"R{i}"), T0).name for i in range(5)}
    assert len(names) == 5


def test_a_long_message_is_cut_to_1024_characters() -> None:
    write = written(make(), node_event("x" * 5000), T0)
    assert len(write.event["message"]) == correlator.MAX_MESSAGE


def test_the_caches_forget_the_least_recently_used_keys() -> None:
    c = EventCorrelator(component="cloudcore", instance="i", cache_size=2)
    first = written(c, node_event(name="a"), T0)
    written(c, node_event(name="b"), T0)
    written(c, node_event(name="c"), T0)  # "a" forgotten
    again = written(c, node_event(name="a"), T0 + 1)
    assert again.patch is None and again.name != first.name
