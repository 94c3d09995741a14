"""The project's command: built-in modules, the kube: section and the kube-api subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from beehive import BeehiveError
from modules.cli import APP, CATALOGUE, services


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_every_built_in_module_name_resolves(tmp_path: Path) -> None:
    text = "modules:\n" + "".join(f"  {name}: {{}}\n" for name in CATALOGUE)
    cfg = APP.load(write(tmp_path, text))
    assert [m.name for m in cfg.modules] == list(CATALOGUE)


def test_a_config_without_kube_gets_no_kube_service(tmp_path: Path) -> None:
    cfg = APP.load(write(tmp_path, "modules:\n  echo: {}\n"))
    with services(cfg) as shared:
        assert dict(shared) == {}


@pytest.mark.integration
def test_kube_embedded_starts_an_api_server_the_modules_can_use(tmp_path: Path) -> None:
    cfg = APP.load(write(tmp_path, "kube: {mode: embedded}\nmodules:\n  echo: {}\n"))
    with services(cfg) as shared:
        with shared["kube"].api_client() as api:
            names = [
                ns.metadata.name
                for ns in client.CoreV1Api(api).list_namespace().items
                if ns.metadata
            ]
        assert "default" in names


def test_kube_section_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        BeehiveError,
        match=r"kube\.mode: expected one of 'embedded', 'kubeconfig', 'incluster', found a string 'cluster'",
    ):
        APP.load(write(tmp_path, "kube: {mode: cluster}\nmodules:\n  echo: {}\n"))


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    cfg = APP.load(
        write(
            tmp_path,
            f"kube: {{mode: kubeconfig, kubeconfig: '{missing}'}}\nmodules:\n  echo: {{}}\n",
        )
    )
    with (
        pytest.raises(
            BeehiveError, match=f"kube \\(kubeconfig mode\\): kubeconfig not found: {missing}"
        ),
        services(cfg),
    ):
        pass


@pytest.mark.integration
def test_embedded_mode_writes_its_kubeconfig_where_asked(tmp_path: Path) -> None:
    target = tmp_path / "out" / "kubeconfig"
    cfg = APP.load(
        write(
            tmp_path, f"kube: {{mode: embedded, kubeconfig: '{target}'}}\nmodules:\n  echo: {{}}\n"
        )
    )
    with services(cfg) as shared:
        assert (
            shared["kube"].kubeconfig_path == target
            and "server: https://127.0.0.1:" in target.read_text()
        )
