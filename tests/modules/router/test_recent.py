"""What the Leases said lately, kept for a few seconds (sans-I/O, a given clock)."""

from __future__ import annotations

from modules.router.forward import Recent


def test_a_value_is_kept_for_its_ttl_only() -> None:
    recent = Recent(ttl=2.0)
    assert recent.get("edge-1", 0.0) is None
    recent.put("edge-1", "r2", 10.0)
    assert recent.get("edge-1", 11.9) == "r2"
    assert recent.get("edge-1", 12.0) is None
    recent.put("edge-1", "", 12.0)  # no owner is an answer too
    assert recent.get("edge-1", 12.5) == ""


def test_forget_and_the_oldest_go_first_past_the_size() -> None:
    recent = Recent(ttl=5.0, size=2)
    recent.put("a", "r1", 0.0)
    recent.put("b", "r2", 0.0)
    recent.put("a", "r3", 1.0)  # a read again is the newest
    recent.put("c", "r1", 1.0)
    assert (recent.get("a", 1.0), recent.get("b", 1.0), recent.get("c", 1.0)) == ("r3", None, "r1")
    recent.forget("a")
    assert recent.get("a", 1.0) is None
