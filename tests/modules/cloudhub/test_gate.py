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


class Waiter:
    """A connection in line: records whether it was started or cut."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def cut(self) -> None:
        self.log.append(f"cut {self.name}")


def enter(gate: HandshakeGate, log: list[str], name: str) -> bool:
    waiter = Waiter(log, name)
    return gate.enter(name, waiter.start, waiter.cut)


def test_over_the_limit_connections_wait_in_line_and_start_in_order_as_slots_free() -> None:
    gate = HandshakeGate(limit=2, timeout=10.0, clock=FakeClock(), queue_limit=3,
                         queue_timeout=10.0)  # fmt: skip
    log: list[str] = []
    assert all(enter(gate, log, name) for name in "abcde")
    assert log == ["start a", "start b"]
    assert (gate.pending, gate.waiting, gate.waited) == (2, 3, 3)
    assert not enter(gate, log, "f")  # the line is full too
    gate.done("a")  # a's request came: c takes its slot
    gate.done("d")  # d went away while waiting: it leaves the line, nothing starts
    gate.done("b")
    assert log == ["start a", "start b", "start c", "start e"]
    assert (gate.pending, gate.waiting, gate.refused) == (2, 0, 1)


def test_a_connection_that_waits_too_long_is_cut_and_slots_reclaimed_start_the_line() -> None:
    clock = FakeClock()
    gate = HandshakeGate(limit=1, timeout=10.0, clock=clock, queue_limit=5, queue_timeout=3.0)
    log: list[str] = []
    enter(gate, log, "slow")
    enter(gate, log, "early")
    clock.advance(2.0)
    enter(gate, log, "late")
    clock.advance(1.5)  # early waited 3.5 s > 3: cut; late waited 1.5 s: still in line
    gate.expire()
    assert log == ["start slow", "cut early"] and gate.given_up == 1
    clock.advance(7.5)  # slow's slot is reclaimed at 10 + 1 s; late has waited 9 s: cut
    gate.expire()
    assert log == ["start slow", "cut early", "cut late"]
    assert enter(gate, log, "next") and log[-1] == "start next"
    assert gate.incomplete == 1


def test_without_a_line_enter_refuses_as_admit_does() -> None:
    gate = make(FakeClock(), limit=1)
    log: list[str] = []
    assert enter(gate, log, "a")
    assert not enter(gate, log, "b")
    assert log == ["start a"] and gate.refused == 1
