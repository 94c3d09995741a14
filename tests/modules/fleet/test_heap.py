"""The C heap's free pages go back to the OS (`modules.fleet.heap`), once per wave of
connections (`Fleet`'s ticker)."""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable

import pytest

from modules.fleet import heap
from tests.fakes import eventually
from tests.modules.fleet.conftest import WAIT, FleetThread

GLIBC = platform.libc_ver()[0] == "glibc"
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_free_pages_between_kept_allocations_go_back_to_the_os() -> None:
    """Blocks freed between blocks still held stay resident until released."""
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(512)]  # 32 MiB
    kept = [ctypes.create_string_buffer(1024) for _ in blocks]  # one after each block
    for block in blocks:  # written, so resident
        ctypes.memset(block, 1, len(block))
    heap.release_free_memory()
    del blocks  # 32 MiB free, in holes between the kept ones
    before = resident()
    assert heap.release_free_memory()
    assert before - resident() > 16 * 2**20
    assert len(kept) == 512


@pytest.mark.integration
def test_the_fleet_releases_the_heap_once_per_wave_of_connections(
    start_fleet: Callable[..., FleetThread],
) -> None:
    per_release = 1 if GLIBC else 0
    fleet = start_fleet(nodes=4)
    assert fleet.wait_connected()

    def releases() -> int:
        return int(fleet.call(lambda: fleet.fleet.heap_releases))

    assert eventually(lambda: releases() == per_release, timeout=WAIT)
    assert fleet.call(fleet.fleet.storm) == 4
    assert eventually(lambda: fleet.counter("connects") == 8, timeout=WAIT)
    assert fleet.wait_connected()
    assert eventually(lambda: releases() == 2 * per_release, timeout=WAIT)
