from __future__ import annotations

from tests.kube_fixtures import kube, kube_namespace  # noqa: F401
