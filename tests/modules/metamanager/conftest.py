from __future__ import annotations

import pytest

from tests.modules.cloudhub.harness import World


@pytest.fixture
def world() -> World:
    return World()
