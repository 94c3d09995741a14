"""Process-wide tuning `beehive run` applies."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from beehive import runtime


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_sets_the_young_threshold_and_keeps_the_older_ones() -> None:
    _, older, oldest = gc.get_threshold()
    runtime.tune_gc(12_345)
    assert gc.get_threshold() == (12_345, older, oldest)


@pytest.mark.usefixtures("restore_gc")
def test_a_zero_threshold_leaves_the_interpreter_default() -> None:
    before = gc.get_threshold()
    runtime.tune_gc(0)
    assert gc.get_threshold() == before
