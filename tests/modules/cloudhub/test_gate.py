"""HandshakeGate on its own: slots from accept to request, at most `limit`, reclaimed
after the handshake timeout."""

from __future__ import annotations

from modules.cloudhub.gate import HandshakeGate
from tests.fakes import FakeClock


def make(clock: FakeClock, limit: int = 2, timeout: float = 10.0) -> HandshakeGate:
    return HandshakeGate(limit=limit, timeout=timeout, clock=clock)


def test_at_most_limit_handshakes_are_pending_and_the_refusals_are_counted() -> None:
    gate = make(FakeClock())
    assert gate.admit(("10.0.0.1", 1))
    assert gate.admit(("10.0.0.1", 2))
    assert not gate.admit(("10.0.0.1", 3))
    assert not gate.admit(("10.0.0.2", 1))
    assert (gate.pending, gate.refused) == (2, 2)


def test_a_request_that_arrives_frees_its_slot() -> None:
    gate = make(FakeClock(), limit=1)
    assert gate.admit("a")
    gate.done("a")
    assert gate.pending == 0
    assert gate.admit("b")
    gate.done("never admitted")  # a request the gate did not count: nothing changes
    assert gate.pending == 1


def test_a_slot_without_a_request_is_reclaimed_a_margin_after_the_timeout() -> None:
    clock = FakeClock()
    gate = make(clock, limit=1, timeout=10.0)
    assert gate.admit("silent")
    clock.advance(10.5)  # the server cut it at 10 s; the slot waits for the margin
    assert not gate.admit("next")
    clock.advance(0.5)  # timeout + 1 s
    assert gate.admit("next")
    assert (gate.pending, gate.refused) == (1, 1)
