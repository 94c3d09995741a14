"""Fixtures for the manifest tests: Kubernetes (tests/kube_fixtures.py)."""

from tests.kube_fixtures import kube

__all__ = ["kube"]
