"""Fixtures for the replica tests: Kubernetes (tests/kube_fixtures.py)."""

from tests.kube_fixtures import kube, kube_namespace

__all__ = ["kube", "kube_namespace"]
