"""The module base class: what a module author writes against.

A module is one actor with its own mailbox. Two styles, chosen by what the
subclass overrides:

- push: override `on_message`; the hive calls it for each message, one at a time,
  on the module's own thread;
- pull: override `run`; it loops on `self.receive(timeout)` the way KubeEdge
  modules loop on ``beehive.Receive``, and returns when `self.stopping` is set
  (or when `receive` raises ModuleStoppedError, which ends the loop cleanly).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from beehive.message import Message

if TYPE_CHECKING:
    from beehive.hive import Hive

log = logging.getLogger("beehive.module")


@dataclasses.dataclass(frozen=True, slots=True)
class ModuleContext:
    """What the hive hands a module instance: identity, settings and shared services."""

    name: str
    group: str
    hive: Hive
    settings: Any  # an instance of the module's settings_type (or None)
    services: Mapping[str, Any]  # shared objects from the composition root (e.g. "kube")
    stopping: threading.Event  # set when the hive asks the module to stop


class Module:
    """Base class for modules; see the module docstring for the two styles."""

    settings_type: ClassVar[type[Any] | None] = None
    """A dataclass with defaults: the module's ``settings:`` section in the config."""

    def __init__(self, context: ModuleContext) -> None:
        self.context = context

    @property
    def module_name(self) -> str:
        return self.context.name

    @property
    def module_group(self) -> str:
        return self.context.group

    @property
    def hive(self) -> Hive:
        return self.context.hive

    @property
    def settings(self) -> Any:
        return self.context.settings

    @property
    def stopping(self) -> threading.Event:
        return self.context.stopping

    @classmethod
    def is_pull_style(cls) -> bool:
        """True when the class overrides `run` (it pulls instead of being pushed)."""
        return cls.run is not Module.run

    def on_start(self) -> None:
        """Called on the module's thread before any message; may raise to fail the start."""

    def on_stop(self) -> None:
        """Called on the module's thread when it stops, after the last message."""

    def on_message(self, message: Message) -> None:
        """Push style: handle one message. An exception here is a module failure."""
        log.warning("module %s has no on_message; dropped %s", self.module_name, message.msg_id)

    def run(self) -> None:
        """Pull style: the module's main loop (see the module docstring)."""

    def receive(self, timeout: float | None = None) -> Message | None:
        """Pull style: the next message from this module's mailbox, None on timeout.

        Raises:
            ModuleStoppedError: the module is stopping and its mailbox is empty.
        """
        return self.hive.receive(self.module_name, timeout=timeout)
