"""Fixtures for the recorder's tests against Kubernetes (tests/kube_fixtures.py)."""

from __future__ import annotations

from tests.kube_fixtures import kube

__all__ = ["kube"]
