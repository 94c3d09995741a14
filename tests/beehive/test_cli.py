"""The `beehive` command: config check/show, debug views, and a real `beehive run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beehive import Hive
from beehive.admin import AdminServer
from beehive.cli import App, main
from tests.fakes import Probe, RecordingModule, RecordingSettings, beehive_command, eventually, msg

MakeHive = Callable[..., Hive]
APP = App(catalogue={"recorder": "tests.fakes:RecordingModule"})
ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), app=APP)
    out, err = capsys.readouterr()
    return code, out, err


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hive.yaml"
    path.write_text(text)
    return str(path)


def test_config_check_says_ok_and_lists_enabled_modules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        "modules:\n  recorder: {}\n  b: {impl: 'tests.fakes:RecordingModule', enable: false}\n",
    )
    assert run_cli(capsys, "config", "check", path) == (
        0,
        f"{path}: OK (1 of 2 modules enabled: recorder)\n",
        "",
    )


def test_config_check_of_a_bad_config_exits_2_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "modules:\n  recorder: {mailbox: {size: -1}}\n")
    code, out, err = run_cli(capsys, "config", "check", path)
    assert (code, out) == (2, "")
    assert (
        err
        == f"beehive: config error: {path}: modules.recorder.mailbox.size: expected an integer >= 1, found -1\n"
    )


def test_config_show_prints_the_effective_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, "modules:\n  recorder: {mailbox: {size: 7}}\n")
    code, out, _ = run_cli(capsys, "config", "show", path)
    assert code == 0
    assert "  recorder:\n    impl: tests.fakes:RecordingModule\n" in out
    assert "    mailbox:\n      size: 7\n      when_full: block\n      timeout: 30.0\n" in out


@pytest.fixture
def admin(make_hive: MakeHive, probe: Probe, tmp_path: Path) -> Iterator[tuple[Hive, str]]:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "held", RecordingModule, settings=RecordingSettings(gated=True), services={"probe": probe}
    )
    hive.start()
    address = f"unix://{tmp_path}/a.sock"
    server = AdminServer(hive, address)
    server.start()
    yield hive, address
    server.stop()
    probe.gate.set()


def test_debug_mailboxes_shows_a_table(
    admin: tuple[Hive, str], probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    hive, address = admin
    first = msg()
    hive.send("held", first)
    assert probe.wait_entered("held", first)
    hive.send("held", msg())
    code, out, _ = run_cli(capsys, "debug", "--address", address, "mailboxes")
    head, row = out.splitlines()
    assert code == 0 and head.split() == [
        "MODULE",
        "STATE",
        "DEPTH",
        "IN",
        "OUT",
        "IN/S",
        "OUT/S",
        "OLDEST",
        "DROPS",
        "RESTARTS",
    ]
    assert row.split()[:5] == ["held", "running", "1/1024", "2", "1"]


def test_debug_mailboxes_json_and_watch(
    admin: tuple[Hive, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, address = admin
    code, out, _ = run_cli(
        capsys,
        "debug",
        "--address",
        address,
        "mailboxes",
        "--json",
        "--watch",
        "--count",
        "2",
        "--interval",
        "0",
    )
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert json.loads(lines[0])[0]["mailbox"]["capacity"] == 1024


def test_debug_modules_peek_and_deadletters(
    admin: tuple[Hive, str], probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    hive, address = admin
    first, queued = msg(), msg(operation="insert", resource="default/pod/web", content={"k": "v"})
    hive.send("held", first)
    assert probe.wait_entered("held", first)
    hive.send("held", queued)
    with pytest.raises(Exception, match="unknown module"):
        hive.send("ghost", msg())
    _, out, _ = run_cli(capsys, "debug", "--address", address, "modules")
    assert "tests.fakes:RecordingModule" in out and "push" in out
    _, out, _ = run_cli(capsys, "debug", "--address", address, "peek", "held", "-n", "5")
    assert queued.msg_id in out and "default/pod/web" in out and '{"k": "v"}' in out
    _, out, _ = run_cli(capsys, "debug", "--address", address, "deadletters")
    assert (
        "ghost" in out
        and "unknown module" in out
        and out.rstrip().endswith("1 dead letter(s) in all")
    )


def test_debug_send_pokes_a_module(
    admin: tuple[Hive, str], probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    _, address = admin
    probe.gate.set()
    code, out, _ = run_cli(
        capsys,
        "debug",
        "--address",
        address,
        "send",
        "held",
        "--operation",
        "insert",
        "--resource",
        "default/configmap/c",
        "--content",
        '{"a": 1}',
    )
    assert code == 0 and out.startswith("sent ") and out.rstrip().endswith(" to held")
    assert probe.wait_for(lambda: probe.count("held") == 1)
    [got] = probe.messages("held")
    assert (got.route.operation, got.route.resource, got.content, got.route.source) == (
        "insert",
        "default/configmap/c",
        {"a": 1},
        "beehive-debug",
    )
    code, out, _ = run_cli(
        capsys, "debug", "--address", address, "send", "held", "--content", "hello", "--sync"
    )
    assert code == 0 and json.loads(out)["content"] == "hello"


def test_debug_with_nothing_running_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "debug", "--address", f"unix://{tmp_path}/x.sock", "mailboxes")
    assert (code, out) == (1, "")
    assert (
        err
        == f"beehive: admin endpoint unix://{tmp_path}/x.sock: nothing is running here (start it with `beehive run CONFIG`)\n"
    )


def test_debug_needs_to_know_which_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "debug", "modules")
    assert code == 1 and "say which process: -c CONFIG or --address ADDRESS" in err


E2E_CONFIG = """
hive:
  admin: {{address: "unix://{sock}"}}
  stop_timeout: 5
modules:
  sink:
    impl: tests.fakes:RecordingModule
    group: sinks
  ticker:
    settings: {{target: sinks, via: group, interval: 0.01, burst: 5, sync_every: 0}}
"""


@pytest.mark.integration
def test_beehive_run_serves_debug_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path, E2E_CONFIG.format(sock=tmp_path / "run.sock"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*beehive_command(), "run", config], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:

        def debug_json() -> list[dict[str, object]] | None:
            done = subprocess.run(
                [*beehive_command(), "debug", "-c", config, "mailboxes", "--json"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            return json.loads(done.stdout) if done.returncode == 0 else None

        def sink_has_messages() -> bool:
            modules = debug_json()
            return bool(modules) and modules[0]["mailbox"]["delivered"] > 0  # type: ignore[index]

        assert eventually(sink_has_messages, timeout=30)
        modules = debug_json()
        assert modules is not None
        assert [m["name"] for m in modules] == ["sink", "ticker"]
        assert {m["state"] for m in modules} == {"running"}
        proc.send_signal(signal.SIGUSR1)  # every thread's stack, and it runs on
        assert eventually(lambda: debug_json() is not None, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"beehive: running sink, ticker; admin at unix://{tmp_path}/run.sock" in err
    assert "Current thread" in err and "(most recent call first)" in err
    assert "beehive: stopping (SIGTERM)" in err
    assert "beehive: stopped" in err and "undelivered" not in err
    assert not (tmp_path / "run.sock").exists()


@pytest.mark.integration
def test_beehive_run_refuses_a_bad_config_and_starts_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, "modules:\n  ticker: {settings: {interval: -1}}\n")
    done = subprocess.run(
        [*beehive_command(), "run", config], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert (
        done.stderr
        == f"beehive: config error: {config}: modules.ticker.settings.interval: expected a number >= 0, found -1\n"
    )
