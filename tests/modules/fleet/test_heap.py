"""The fleet gives the C heap's free pages back (`beehive.heap`) once per wave of
connections (`Fleet`'s ticker)."""

from __future__ import annotations

import platform
from collections.abc import Callable

import pytest

from tests.fakes import eventually
from tests.modules.fleet.conftest import WAIT, FleetThread

GLIBC = platform.libc_ver()[0] == "glibc"


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
