"""Fixtures for the certificate tests: Kubernetes (tests/kube_fixtures.py), a Secret
store in a namespace that does not exist yet, and a CA."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from modules.certs import ca as ca_mod
from modules.certs.store import SecretStore
from modules.certs.token import utc_now
from tests.kube_fixtures import KubeTestCluster, delete_if_present, kube, unique

__all__ = ["ca", "kube", "now", "store"]


@pytest.fixture
def now() -> datetime.datetime:
    return utc_now()


@pytest.fixture
def store(kube: KubeTestCluster) -> Iterator[SecretStore]:
    """A store whose namespace is not created yet (deleted after the test)."""
    namespace = unique("kubeedge")
    yield SecretStore(kube.core, namespace)
    delete_if_present(kube.core.delete_namespace, namespace)


@pytest.fixture
def ca(now: datetime.datetime) -> ca_mod.KeyPair:
    return ca_mod.generate_ca(now)
