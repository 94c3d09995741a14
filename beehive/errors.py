"""Errors raised by the framework.

The tree::

    BeehiveError
    ├── UnknownModuleError(name)          send/receive to a module the hive does not have
    ├── UnknownGroupError(group)          send_to_group to a group with no members
    ├── DuplicateModuleError(name)        two modules registered under one name
    ├── ModuleStoppedError(name)          target stopped, stopping or never started
    ├── MailboxFullError(name, ...)       the target's mailbox stayed full
    ├── GroupSendError(group, failures)   some members of a group did not get the message
    ├── SyncTimeoutError(msg_id, timeout) no (complete) reply in time
    ├── MessageDecodeError(reason, excerpt)
    ├── MessageEncodeError(reason)
    ├── ConfigError(path, key, reason)    a config file is wrong; names file and dotted key
    └── AdminError(address, reason)       the admin endpoint could not be reached or refused
"""

from __future__ import annotations

from collections.abc import Mapping

EXCERPT_LIMIT = 256


def excerpt(raw: bytes | str, limit: int = EXCERPT_LIMIT) -> str:
    """A printable, bounded excerpt of some input, for error messages and logs."""
    text = repr(raw[:limit])
    return text + ("..." if len(raw) > limit else "")


class BeehiveError(Exception):
    """Base of every error the framework raises on purpose."""


class UnknownModuleError(BeehiveError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown module {self.name!r}"


class UnknownGroupError(BeehiveError):
    def __init__(self, group: str) -> None:
        super().__init__(group)
        self.group = group

    def __str__(self) -> str:
        return f"unknown group {self.group!r} (no module is a member)"


class DuplicateModuleError(BeehiveError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"a module named {self.name!r} is already registered"


class ModuleStoppedError(BeehiveError):
    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(name, detail)
        self.name = name
        self.detail = detail

    def __str__(self) -> str:
        text = f"module {self.name!r} is not running"
        return f"{text}: {self.detail}" if self.detail else text


class MailboxFullError(BeehiveError):
    def __init__(self, name: str, capacity: int, waited: float) -> None:
        super().__init__(name, capacity, waited)
        self.name = name
        self.capacity = capacity
        self.waited = waited

    def __str__(self) -> str:
        waited = f" after waiting {self.waited:g}s" if self.waited else ""
        return f"mailbox of {self.name!r} is full ({self.capacity} messages){waited}"


class GroupSendError(BeehiveError):
    def __init__(self, group: str, failures: Mapping[str, BeehiveError]) -> None:
        super().__init__(group, dict(failures))
        self.group = group
        self.failures = dict(failures)

    def __str__(self) -> str:
        parts = "; ".join(f"{name}: {err}" for name, err in sorted(self.failures.items()))
        return f"group {self.group!r}: {len(self.failures)} member(s) not reached: {parts}"


class SyncTimeoutError(BeehiveError):
    def __init__(self, msg_id: str, timeout: float, detail: str = "") -> None:
        super().__init__(msg_id, timeout, detail)
        self.msg_id = msg_id
        self.timeout = timeout
        self.detail = detail

    def __str__(self) -> str:
        text = f"no reply to message {self.msg_id} within {self.timeout:g}s"
        return f"{text} ({self.detail})" if self.detail else text


class MessageDecodeError(BeehiveError):
    def __init__(self, reason: str, raw: bytes | str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt(raw)

    def __str__(self) -> str:
        return f"cannot decode message: {self.reason}; input: {self.excerpt}"


class MessageEncodeError(BeehiveError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot encode message: {self.reason}"


class ConfigError(BeehiveError):
    def __init__(self, path: str, key: str, reason: str) -> None:
        super().__init__(path, key, reason)
        self.path = path
        self.key = key
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        return f"{where}: {self.reason}"


class AdminError(BeehiveError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(address, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"admin endpoint {self.address}: {self.reason}"
