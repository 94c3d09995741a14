"""Test doubles shared by the test suite (configurable by YAML as well as in code)."""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from beehive import JsonValue, Message, Module

# How long a test waits for something before failing. Generous, because CI machines
# are small and busy; a passing test never waits it out.
WAIT = 15.0


class FakeClock:
    """Monotonic seconds that move only when the test moves them: pass it where code
    takes a ``clock: Callable[[], float]``, then `advance` it (or set `now`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now  # the time every call returns

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward (never back: the clocks it stands in for are monotonic)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock does not go back: {seconds}")
        self.now += seconds


class Probe:
    """Shared by a test and its modules: what each module received, and a gate.

    Modules record into it; tests wait on its condition for what they expect,
    with a bound, instead of sleeping.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.received: list[tuple[str, Message]] = []  # (module, message) in arrival order
        self.events: list[str] = []  # free-form lifecycle notes, e.g. "start:a"
        self.gate = threading.Event()  # modules with `gated` block on it per message
        self.gate.set()

    def record(self, module: str, message: Message) -> None:
        with self.cond:
            self.received.append((module, message))
            self.cond.notify_all()

    def note(self, event: str) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_entered(self, module: str, message: Message) -> bool:
        """Wait until `module`'s handler has begun on `message` (it may be gated there)."""
        return self.wait_for(lambda: f"enter:{module}:{message.msg_id}" in self.events)

    def messages(self, module: str) -> list[Message]:
        with self.cond:
            return [m for name, m in self.received if name == module]

    def count(self, module: str) -> int:
        return len(self.messages(module))


@dataclasses.dataclass(frozen=True)
class RecordingSettings:
    reply: bool = True  # answer sync requests with a reply carrying the request's content
    fail_on: str = ""  # raise when a message has this operation
    fail_start: int = 0  # raise in on_start this many times (counted in the probe)
    gated: bool = False  # wait for probe.gate before handling each message


class RecordingModule(Module):
    """Push-style module that records what it gets (in `services["probe"]` if given)."""

    settings_type = RecordingSettings

    def on_start(self) -> None:
        self.probe: Probe = self.context.services.get("probe") or Probe()
        self.probe.note(f"start:{self.module_name}")
        starts = self.probe.events.count(f"start:{self.module_name}")
        if starts <= self.settings.fail_start:
            raise RuntimeError(f"start failure #{starts}")

    def on_stop(self) -> None:
        self.probe.note(f"stop:{self.module_name}")

    def on_message(self, message: Message) -> None:
        self.probe.note(f"enter:{self.module_name}:{message.msg_id}")
        if self.settings.gated:
            self.probe.gate.wait(10)
        if self.settings.fail_on and message.route.operation == self.settings.fail_on:
            raise ValueError(f"told to fail on {message.route.operation}")
        self.probe.record(self.module_name, message)
        if message.header.sync and self.settings.reply:
            self.hive.send_resp(message.reply(message.content))


class PullRecorder(Module):
    """Pull-style module: loops on receive, records, replies; fails on `fail_on`."""

    settings_type = RecordingSettings

    def on_start(self) -> None:
        self.probe: Probe = self.context.services.get("probe") or Probe()
        self.probe.note(f"start:{self.module_name}")

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.receive(timeout=5)
            if message is None:
                continue
            if self.settings.fail_on and message.route.operation == self.settings.fail_on:
                raise ValueError(f"told to fail on {message.route.operation}")
            self.probe.record(self.module_name, message)
            if message.header.sync and self.settings.reply:
                self.hive.send_resp(message.reply(message.content))


def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Wait, bounded, for a condition nothing notifies about (module state, stats)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def msg(
    operation: str = "update", resource: str = "default/pod/p", content: JsonValue = None
) -> Message:
    """A small message for tests."""
    return Message.new(
        source="test", group="resource", operation=operation, resource=resource, content=content
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def beehive_command() -> list[str]:
    """How to run the ``beehive`` console script of this environment."""
    script = Path(sys.executable).parent / "beehive"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modules.cli"]
