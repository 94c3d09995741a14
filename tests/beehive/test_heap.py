"""The C heap's free pages go back to the OS (`beehive.heap`), and a server does it
once a wave of connections has settled (`WaveRelease`, on a fake clock)."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from beehive import heap

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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_release_comes_once_a_wave_of_connections_has_settled() -> None:
    clock, released = Clock(), []

    def release() -> bool:
        released.append(clock.now)
        return True

    policy = heap.WaveRelease(clock=clock, wave=3, quiet=2.0, release=release)
    for _ in range(2):
        policy.opened()
    clock.now += 10
    assert not policy.tick()  # two connections are not a wave
    policy.opened()
    clock.now += 1.9
    assert not policy.tick()  # the wave may still be going
    policy.opened()  # it is: the quiet time starts again
    clock.now += 1.9
    assert not policy.tick()
    clock.now += 0.1
    assert policy.tick() and released == [113.9] and policy.releases == 1
    clock.now += 60
    assert not policy.tick()  # nothing new opened since
    for _ in range(3):
        policy.opened()
    clock.now += 2
    assert policy.tick() and policy.releases == 2


def test_a_wave_of_zero_never_releases() -> None:
    clock = Clock()
    policy = heap.WaveRelease(clock=clock, wave=0, release=lambda: True)
    for _ in range(1000):
        policy.opened()
    clock.now += 60
    assert not policy.tick() and policy.releases == 0


def test_where_the_c_library_cannot_release_nothing_is_counted() -> None:
    clock = Clock()
    policy = heap.WaveRelease(clock=clock, wave=1, release=lambda: False)
    policy.opened()
    clock.now += 60
    assert policy.tick() and policy.releases == 0
