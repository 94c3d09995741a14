"""Kubernetes fixtures for the API server's tests (see tests/kube_fixtures.py)."""

from tests.kube_fixtures import kube, kube_namespace

__all__ = ["kube", "kube_namespace"]
