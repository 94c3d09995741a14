from __future__ import annotations

import pytest

from tests.kube_fixtures import edge_node, kube, kube_namespace  # noqa: F401
from tests.modules.cloudhub.harness import World


@pytest.fixture
def world() -> World:
    return World()
