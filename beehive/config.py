"""YAML config: which modules run, with what mailboxes, restart policies and settings.

A config file has a ``hive:`` section (the framework's own settings), a ``modules:``
mapping (one entry per module, in start order) and any extra sections the
application declares (for example ``kube:``). `load_config` validates all of it
before anything starts; `build_hive` turns a valid config into a Hive.

    hive:
      admin: {address: "unix:///run/beehive/cloud.sock"}
      defaults: {mailbox: {size: 1024, when_full: block, timeout: 30}}
    modules:
      edgecontroller: {}                      # implementation from the catalogue
      cloudhub:
        impl: tests.fakes:RecordingModule     # swapped for a test double
        mailbox: {size: 4096}
        settings: {port: 10000}
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from beehive import errors, runtime, settings
from beehive.hive import Hive
from beehive.module import Module
from beehive.spec import MailboxSpec, RestartSpec


@dataclasses.dataclass(frozen=True, slots=True)
class AdminSettings:
    """Where `beehive debug` reaches a running process."""

    address: str = ""  # unix:///path, tcp://127.0.0.1:PORT or "off"; "" = a private unix socket
    allow_remote: bool = False  # permit a tcp address that is not loopback


@dataclasses.dataclass(frozen=True, slots=True)
class Defaults:
    """Mailbox and restart settings for modules that do not set their own."""

    mailbox: MailboxSpec = dataclasses.field(default_factory=MailboxSpec)
    restart: RestartSpec = dataclasses.field(default_factory=RestartSpec)


@dataclasses.dataclass(frozen=True, slots=True)
class HiveSettings:
    """The ``hive:`` section."""

    admin: AdminSettings = dataclasses.field(default_factory=AdminSettings)
    defaults: Defaults = dataclasses.field(default_factory=Defaults)
    dead_letters: int = dataclasses.field(default=1000, metadata={"min": 1})
    stop_timeout: float = dataclasses.field(default=5.0, metadata={"min": 0})
    stats_interval: float = dataclasses.field(default=1.0, metadata={"min": 0.01})
    # `beehive run` only: new objects between young GC collections (0 = Python's 700).
    gc_threshold: int = dataclasses.field(default=runtime.DEFAULT_GC_THRESHOLD, metadata={"min": 0})


@dataclasses.dataclass(frozen=True, slots=True)
class _ModuleEntry:
    """The raw keys of one ``modules.NAME`` entry (settings checked separately)."""

    impl: str = ""
    enable: bool = True
    group: str = ""
    mailbox: dict[str, Any] = dataclasses.field(default_factory=dict)
    restart: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleConfig:
    """One module as the config wants it run."""

    name: str
    impl: str
    cls: type[Module]
    enable: bool
    group: str
    mailbox: MailboxSpec
    restart: RestartSpec
    settings: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """A validated config file."""

    path: str
    hive: HiveSettings
    modules: list[ModuleConfig]
    sections: dict[str, Any]  # extra sections by name, each an instance of its dataclass
    given: frozenset[str] = frozenset()  # the top-level keys the file actually has

    @property
    def enabled(self) -> list[ModuleConfig]:
        return [m for m in self.modules if m.enable]

    @property
    def admin_address(self) -> str:
        return self.hive.admin.address or default_admin_address(self.path)


def load_config(
    path: str | os.PathLike[str],
    *,
    catalogue: Mapping[str, str] | None = None,
    sections: Mapping[str, type[Any]] | None = None,
) -> Config:
    """Read and validate a config file.

    Args:
        path: the YAML file.
        catalogue: module name -> default implementation ("pkg.mod:Class"), used
            when an entry gives no ``impl``.
        sections: extra top-level sections the application accepts, name -> dataclass.

    Raises:
        ConfigError: naming the file and the dotted key of what is wrong.
    """
    where = str(path)
    data = _read_yaml(where)
    sections = dict(sections or {})
    known = ["hive", "modules", *sections]
    for key in data:
        if key not in known:
            raise errors.ConfigError(where, str(key), settings.unknown_key(str(key), known))
    hive = settings.build(HiveSettings, data.get("hive"), path=where, key="hive")
    _check_admin(hive.admin, where)
    modules = _modules(data.get("modules"), hive.defaults, catalogue or {}, where)
    extra = {
        name: settings.build(cls, data.get(name), path=where, key=name)
        for name, cls in sections.items()
    }
    return Config(where, hive, modules, extra, frozenset(str(k) for k in data))


def build_hive(config: Config, *, services: Mapping[str, Any] | None = None) -> Hive:
    """A hive with every enabled module of `config` registered (not yet started)."""
    hive = Hive(dead_letters=config.hive.dead_letters, stats_interval=config.hive.stats_interval)
    for m in config.enabled:
        hive.add(
            m.name,
            m.cls,
            group=m.group,
            mailbox=m.mailbox,
            restart=m.restart,
            settings=m.settings,
            services=services,
            impl=m.impl,
        )
    return hive


def effective(config: Config) -> dict[str, Any]:
    """The config with every default filled in, as YAML-ready data."""
    modules = {
        m.name: {
            "impl": m.impl,
            "enable": m.enable,
            "group": m.group,
            "mailbox": settings.plain(m.mailbox),
            "restart": settings.plain(m.restart),
            "settings": settings.plain(m.settings) if m.settings is not None else {},
        }
        for m in config.modules
    }
    hive = settings.plain(config.hive)
    hive["admin"]["address"] = config.admin_address
    extra = {name: settings.plain(value) for name, value in config.sections.items()}
    return {"hive": hive, "modules": modules, **extra}


def default_admin_address(config_path: str) -> str:
    """A private unix socket per config file, in a per-user 0700 directory."""
    absolute = os.path.abspath(config_path)
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:10]
    folder = Path(tempfile.gettempdir()) / f"beehive-{os.getuid()}"
    return f"unix://{folder}/{Path(absolute).stem}-{digest}.sock"


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_StrictLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise errors.ConfigError(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(path, "", f"cannot read: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise errors.ConfigError(path, "", f"YAML syntax error: {line}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise errors.ConfigError(path, "", f"YAML error: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.ConfigError(
            path, "", f"expected a mapping at the top, found {type(data).__name__}"
        )
    return data


def _modules(
    data: object, defaults: Defaults, catalogue: Mapping[str, str], path: str
) -> list[ModuleConfig]:
    if not isinstance(data, Mapping) or not data:
        raise errors.ConfigError(path, "modules", "expected a mapping of at least one module")
    modules = []
    for name, raw in data.items():
        key = f"modules.{name}"
        entry = settings.build(_ModuleEntry, raw, path=path, key=key)
        impl = entry.impl or catalogue.get(str(name), "")
        if not impl:
            known = ", ".join(sorted(catalogue)) or "none"
            raise errors.ConfigError(
                path,
                f"{key}.impl",
                f"required: no built-in module is named {name!r} (built-in: {known})",
            )
        cls = _import_module_class(impl, path=path, key=f"{key}.impl")
        mailbox = settings.build(
            MailboxSpec, entry.mailbox, path=path, key=f"{key}.mailbox", base=defaults.mailbox
        )
        restart = settings.build(
            RestartSpec, entry.restart, path=path, key=f"{key}.restart", base=defaults.restart
        )
        module_settings = _module_settings(cls, entry.settings, path=path, key=f"{key}.settings")
        modules.append(
            ModuleConfig(
                str(name), impl, cls, entry.enable, entry.group, mailbox, restart, module_settings
            )
        )
    return modules


def _module_settings(cls: type[Module], data: dict[str, Any], *, path: str, key: str) -> Any:
    if cls.settings_type is None:
        if data:
            raise errors.ConfigError(path, key, f"{cls.__qualname__} takes no settings")
        return None
    return settings.build(cls.settings_type, data, path=path, key=key)


def _import_module_class(impl: str, *, path: str, key: str) -> type[Module]:
    module_path, sep, attr = impl.partition(":")
    if not sep:
        module_path, _, attr = impl.rpartition(".")
    if not module_path or not attr:
        raise errors.ConfigError(path, key, f"expected 'package.module:Class', found {impl!r}")
    try:
        obj = getattr(importlib.import_module(module_path), attr)
    except ImportError as exc:
        raise errors.ConfigError(path, key, f"cannot import {impl!r}: {exc}") from None
    except AttributeError:
        raise errors.ConfigError(
            path, key, f"cannot import {impl!r}: {module_path} has no {attr!r}"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, Module)):
        raise errors.ConfigError(
            path, key, f"{impl!r} is not a beehive Module subclass (found {type(obj).__name__})"
        )
    return obj


def _check_admin(admin: AdminSettings, path: str) -> None:
    address = admin.address
    if address in ("", "off") or address.startswith("unix://"):
        return
    if not address.startswith("tcp://"):
        raise errors.ConfigError(
            path,
            "hive.admin.address",
            f"expected unix://PATH, tcp://HOST:PORT or off, found {address!r}",
        )
    host, _, port = address[len("tcp://") :].rpartition(":")
    if not host or not port.isdigit():
        raise errors.ConfigError(
            path, "hive.admin.address", f"expected tcp://HOST:PORT, found {address!r}"
        )
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") and not admin.allow_remote:
        raise errors.ConfigError(
            path,
            "hive.admin.address",
            f"{host} is not a loopback address;"
            " set hive.admin.allow_remote: true to serve it there",
        )


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
