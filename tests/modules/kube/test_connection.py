"""KubeConnection's clients: the token refresh hook runs at most once a second."""

from __future__ import annotations

from typing import Any

import pytest

from modules.kube import connection, raw
from tests.fakes import FakeClock
from tests.kube_fixtures import KubeTestCluster, kube  # noqa: F401


def test_a_throttled_hook_runs_at_most_once_per_period() -> None:
    clock, runs = FakeClock(), list[Any]()
    hook = connection.throttled(runs.append, 1.0, clock=clock)
    for _ in range(5):
        hook("config")
    clock.advance(0.5)
    hook("config")
    assert runs == ["config"]
    clock.advance(0.5)
    hook("config")
    assert runs == ["config", "config"]


def test_the_client_runs_the_refresh_hook_before_every_request(
    kube: KubeTestCluster,  # noqa: F811
) -> None:
    # Why the hook is throttled: the client library calls it for each request, when it
    # logs in with a token (the embedded API's kubeconfig has one).
    api_client = kube.new_client()
    if "BearerToken" not in api_client.configuration.api_key:
        pytest.skip("the kubeconfig logs in without a token: the client runs no refresh hook")
    calls: list[Any] = []
    original = api_client.configuration.refresh_api_key_hook
    api_client.configuration.refresh_api_key_hook = lambda conf: calls.append(conf)
    try:
        for _ in range(3):
            raw.request(api_client, "GET", "/version")
    finally:
        api_client.configuration.refresh_api_key_hook = original
    assert len(calls) == 3


def test_a_connections_client_still_authenticates(kube: KubeTestCluster) -> None:  # noqa: F811
    with connection.KubeConnection(kube.kubeconfig_path).api_client() as api_client:
        for _ in range(3):
            assert raw.request(api_client, "GET", "/api/v1/namespaces/default")
