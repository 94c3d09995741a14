"""The YAML config: defaults, swapping implementations, and every bad input's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from beehive import ConfigError, MailboxSpec, RestartPolicy, WhenFull
from beehive.config import build_hive, effective, load_config
from tests.fakes import RecordingModule, RecordingSettings

CATALOGUE = {"recorder": "tests.fakes:RecordingModule"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hive.yaml"
    path.write_text(text)
    return str(path)


def test_a_minimal_config_fills_in_every_default(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "modules:\n  recorder: {}\n"), catalogue=CATALOGUE)
    [module] = cfg.modules
    assert module.cls is RecordingModule and module.impl == "tests.fakes:RecordingModule"
    assert module.mailbox == MailboxSpec() and module.restart.policy is RestartPolicy.ON_FAILURE
    assert module.settings == RecordingSettings() and module.enable
    assert cfg.admin_address.startswith("unix://") and cfg.admin_address.endswith(".sock")


def test_module_keys_override_the_hive_defaults(tmp_path: Path) -> None:
    text = """
hive:
  defaults:
    mailbox: {size: 10, timeout: 2}
modules:
  a:
    impl: tests.fakes:RecordingModule
    group: g
    mailbox: {when_full: drop-oldest}
    restart: {policy: never}
    settings: {reply: false}
  b:
    impl: tests.fakes.RecordingModule
    enable: false
"""
    cfg = load_config(write(tmp_path, text))
    a, b = cfg.modules
    assert a.mailbox == MailboxSpec(size=10, when_full=WhenFull.DROP_OLDEST, timeout=2.0)
    assert a.restart.policy is RestartPolicy.NEVER and a.settings == RecordingSettings(reply=False)
    assert a.group == "g" and not b.enable
    assert [m.name for m in cfg.enabled] == ["a"]


def test_impl_swaps_a_catalogued_module_for_another(tmp_path: Path) -> None:
    text = "modules:\n  recorder: {impl: 'tests.fakes:PullRecorder'}\n"
    cfg = load_config(write(tmp_path, text), catalogue=CATALOGUE)
    assert cfg.modules[0].cls.__name__ == "PullRecorder"


def test_build_hive_registers_only_enabled_modules(tmp_path: Path) -> None:
    text = "modules:\n  recorder: {group: g}\n  off: {impl: 'tests.fakes:RecordingModule', enable: false}\n"
    hive = build_hive(load_config(write(tmp_path, text), catalogue=CATALOGUE))
    assert [m.name for m in hive.modules()] == ["recorder"] and hive.groups() == {"g": ["recorder"]}


def test_effective_config_shows_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "modules:\n  recorder: {}\n"), catalogue=CATALOGUE)
    shown = effective(cfg)
    assert shown["modules"]["recorder"]["mailbox"] == {
        "size": 1024,
        "when_full": "block",
        "timeout": 30.0,
    }
    assert shown["modules"]["recorder"]["settings"]["reply"] is True
    assert shown["hive"]["admin"]["address"] == cfg.admin_address


def test_extra_sections_are_typed_too(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "modules:\n  recorder: {}\nextra: {reply: false}\n"),
        catalogue=CATALOGUE,
        sections={"extra": RecordingSettings},
    )
    assert cfg.sections["extra"] == RecordingSettings(reply=False)


BAD = [
    pytest.param(
        "hive: {gc_threshold: -1}\nmodules:\n  recorder: {}\n",
        "hive.gc_threshold: expected an integer >= 0, found -1",
        id="negative gc threshold",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {sise: 3}}\n",
        "modules.recorder.mailbox.sise: unknown key (did you mean 'size'?)",
        id="unknown key with a suggestion",
    ),
    pytest.param(
        "modulez: {}\n",
        "modulez: unknown key (did you mean 'modules'?)",
        id="unknown top-level key",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {size: -5}}\n",
        "modules.recorder.mailbox.size: expected an integer >= 1, found -5",
        id="negative size",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {size: big}}\n",
        "modules.recorder.mailbox.size: expected an integer, found a string 'big'",
        id="size not a number",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {size: 1.5}}\n",
        "modules.recorder.mailbox.size: expected an integer, found a number 1.5",
        id="fractional size",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {timeout: -1}}\n",
        "modules.recorder.mailbox.timeout: expected a number >= 0, found -1",
        id="negative timeout",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: {when_full: drop}}\n",
        "modules.recorder.mailbox.when_full: expected one of 'block', 'drop-oldest', 'reject', found a string 'drop'",
        id="unknown policy",
    ),
    pytest.param(
        "modules:\n  recorder: {restart: {policy: sometimes}}\n",
        "modules.recorder.restart.policy: expected one of 'always', 'on-failure', 'never'",
        id="unknown restart policy",
    ),
    pytest.param(
        "modules:\n  recorder: {enable: yes please}\n",
        "modules.recorder.enable: expected true or false, found a string 'yes please'",
        id="enable not a boolean",
    ),
    pytest.param(
        "modules:\n  recorder: {settings: {reply: 1}}\n",
        "modules.recorder.settings.reply: expected true or false, found an integer 1",
        id="wrong settings type",
    ),
    pytest.param(
        "modules:\n  recorder: {settings: {replay: true}}\n",
        "modules.recorder.settings.replay: unknown key (did you mean 'reply'?)",
        id="unknown settings key",
    ),
    pytest.param(
        "modules:\n  recorder: [1]\n",
        "modules.recorder: expected a mapping, found a list",
        id="module entry not a mapping",
    ),
    pytest.param(
        "modules: {}\n", "modules: expected a mapping of at least one module", id="no modules"
    ),
    pytest.param(
        "hive: {}\n", "modules: expected a mapping of at least one module", id="modules missing"
    ),
    pytest.param(
        "modules:\n  mystery: {}\n",
        "modules.mystery.impl: required: no built-in module is named 'mystery' (built-in: recorder)",
        id="unknown module without impl",
    ),
    pytest.param(
        "modules:\n  m: {impl: 'no.such.pkg:X'}\n",
        "modules.m.impl: cannot import 'no.such.pkg:X': No module named 'no'",
        id="impl cannot be imported",
    ),
    pytest.param(
        "modules:\n  m: {impl: 'tests.fakes:Nope'}\n",
        "modules.m.impl: cannot import 'tests.fakes:Nope': tests.fakes has no 'Nope'",
        id="impl attribute missing",
    ),
    pytest.param(
        "modules:\n  m: {impl: 'tests.fakes:msg'}\n",
        "modules.m.impl: 'tests.fakes:msg' is not a beehive Module subclass (found function)",
        id="impl is not a module",
    ),
    pytest.param(
        "modules:\n  m: {impl: 'justaname'}\n",
        "modules.m.impl: expected 'package.module:Class', found 'justaname'",
        id="impl without a module path",
    ),
    pytest.param(
        "modules:\n  m: {impl: 'beehive.module:Module', settings: {x: 1}}\n",
        "modules.m.settings: Module takes no settings",
        id="settings for a module without any",
    ),
    pytest.param(
        "hive: {dead_letters: 0}\nmodules:\n  recorder: {}\n",
        "hive.dead_letters: expected an integer >= 1, found 0",
        id="zero dead letters",
    ),
    pytest.param(
        "hive: {admin: {address: 'http://x'}}\nmodules:\n  recorder: {}\n",
        "hive.admin.address: expected unix://PATH, tcp://HOST:PORT or off, found 'http://x'",
        id="admin address scheme",
    ),
    pytest.param(
        "hive: {admin: {address: 'tcp://0.0.0.0:9000'}}\nmodules:\n  recorder: {}\n",
        "hive.admin.address: 0.0.0.0 is not a loopback address; set hive.admin.allow_remote: true",
        id="public admin address",
    ),
    pytest.param(
        "modules:\n  recorder: {}\n  recorder: {}\n",
        "YAML syntax error: line 3, column 3: duplicate key 'recorder'",
        id="duplicate key",
    ),
    pytest.param(
        "modules:\n  recorder: {mailbox: [}\n",
        "YAML syntax error: line 2",
        id="yaml syntax error with line",
    ),
    pytest.param(
        "- just\n- a list\n",
        "expected a mapping at the top, found list",
        id="top level not a mapping",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_names_file_key_expected_and_found(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, catalogue=CATALOGUE)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_remote_admin_address_is_allowed_when_asked_for(tmp_path: Path) -> None:
    text = "hive: {admin: {address: 'tcp://0.0.0.0:9000', allow_remote: true}}\nmodules:\n  recorder: {}\n"
    assert (
        load_config(write(tmp_path, text), catalogue=CATALOGUE).admin_address
        == "tcp://0.0.0.0:9000"
    )
