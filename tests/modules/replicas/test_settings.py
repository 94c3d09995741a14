"""The ``replica:`` section: defaults, identity, and client-go's rule on durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from beehive import errors
from modules import cli
from modules.replicas.settings import ReplicaSettings


def test_identity_defaults_to_the_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "cloudcore-7d9f-abcde")
    assert ReplicaSettings().identity == "cloudcore-7d9f-abcde"
    assert ReplicaSettings(id="given").identity == "given"


def test_identity_falls_back_to_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    assert ReplicaSettings().identity


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [
        pytest.param(10.0, 10.0, 2.0, id="deadline not below the duration"),
        pytest.param(15.0, 2.0, 2.0, id="deadline not above 1.2 retry periods"),
    ],
)
def test_durations_that_break_client_go_rule_are_refused(
    duration: float, deadline: float, retry: float
) -> None:
    settings = ReplicaSettings(lease_duration=duration, renew_deadline=deadline, retry_period=retry)
    with pytest.raises(errors.ConfigError, match="lease_duration > renew_deadline"):
        settings.check("c.yaml")


def test_the_defaults_keep_the_rule() -> None:
    ReplicaSettings().check()


@pytest.mark.integration
def test_a_config_with_a_replica_section_gets_the_replica_service(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kube: {mode: embedded}\n"
        "replica: {id: solo, lease_duration: 3, renew_deadline: 2, retry_period: 0.1}\n"
        "modules:\n  echo: {}\n"
    )
    with cli.services(cli.APP.load(str(path))) as shared:
        replica = shared["replica"]
        assert replica.is_leader() and replica.members() == ["solo"]
    assert not replica.is_leader()  # released on the way out
