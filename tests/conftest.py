"""Suite-wide fixtures: fresh hives that are always stopped, and a thread-leak check."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from beehive import Hive
from modules.hub import tlslayer
from tests.fakes import Probe


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def make_hive() -> Iterator[Callable[..., Hive]]:
    """Build hives for a test; every one is stopped at the end, even on failure."""
    hives: list[Hive] = []

    def make(**kwargs: Any) -> Hive:
        hive = Hive(**kwargs)
        hives.append(hive)
        return hive

    yield make
    for hive in hives:
        hive.stop(timeout=2)


@pytest.fixture(autouse=True)
def no_leaked_module_threads() -> Iterator[None]:
    """Fail a test that leaves a module actor (or hive thread) running behind it."""
    yield
    leftover = [
        t.name for t in threading.enumerate() if t.name.startswith("beehive-") and t.is_alive()
    ]
    for name in list(leftover):
        thread = next((t for t in threading.enumerate() if t.name == name), None)
        if thread is not None:
            thread.join(timeout=2)
    still = [
        t.name for t in threading.enumerate() if t.name.startswith("beehive-") and t.is_alive()
    ]
    assert not still, f"threads left running: {still}"


@pytest.fixture
def workers() -> Iterator[tlslayer.HandshakeWorkers]:
    """Two TLS handshake worker threads, closed after the test."""
    pool = tlslayer.HandshakeWorkers(2)
    yield pool
    pool.close()
