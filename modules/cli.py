"""The project's ``beehive`` command: the framework's command with our modules plugged in."""

from __future__ import annotations

from collections.abc import Sequence

from beehive import cli

# Module names that need no ``impl:`` in a config, and their implementations.
CATALOGUE: dict[str, str] = {
    "ticker": "modules.demo:Ticker",
    "echo": "modules.demo:Echo",
}

APP = cli.App(prog="beehive", catalogue=CATALOGUE)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, app=APP)


if __name__ == "__main__":
    raise SystemExit(main())
