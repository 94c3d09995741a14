"""The ``beehive`` command: run a config, check or show it, debug a running process.

The framework provides the command; the application (``modules.cli``) supplies an
`App` that names its built-in modules, its extra config sections, the shared
services modules get (e.g. a Kubernetes connection) and any extra subcommands.
Library code never exits; `main` turns errors into exit codes (2 for a bad
config or usage, 1 for a runtime failure).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from beehive import config, errors

ServicesFactory = Callable[[config.Config], AbstractContextManager[Mapping[str, Any]]]
Registrar = Callable[[Any], object]  # adds a subcommand to argparse subparsers
# Adds a `beehive debug` subcommand: (debug subparsers, args -> AdminClient).
DebugRegistrar = Callable[[Any, Callable[[argparse.Namespace], Any]], object]


@contextlib.contextmanager
def no_services(_: config.Config) -> Iterator[Mapping[str, Any]]:
    yield {}


@dataclasses.dataclass(frozen=True)
class App:
    """What an application plugs into the command."""

    prog: str = "beehive"
    catalogue: Mapping[str, str] = dataclasses.field(default_factory=dict)
    sections: Mapping[str, type[Any]] = dataclasses.field(default_factory=dict)
    services: ServicesFactory = no_services
    commands: Sequence[Registrar] = ()
    debug_commands: Sequence[DebugRegistrar] = ()

    def load(self, path: str) -> config.Config:
        return config.load_config(path, catalogue=self.catalogue, sections=self.sections)


def main(argv: Sequence[str] | None = None, *, app: App | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the exit code."""
    from beehive.cli import configcmd, debug, run

    app = app or App()
    _import_from_cwd()
    parser = argparse.ArgumentParser(prog=app.prog, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.register(sub, app)
    configcmd.register(sub, app)
    debug.register(sub, app)
    for registrar in app.commands:
        registrar(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except errors.ConfigError as exc:
        print(f"{app.prog}: config error: {exc}", file=sys.stderr)
        return 2
    except errors.BeehiveError as exc:
        print(f"{app.prog}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _import_from_cwd() -> None:
    """Let ``impl:`` name modules under the working directory, as ``python -m`` would."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
