"""Errors raised by the hub protocol.

The tree (all under `beehive.errors.BeehiveError`)::

    HubError
    ├── HandshakeError(reason)          path or headers of a connection are wrong
    ├── WrongNodeError(node_id, resource)  a message names another node's resource
    ├── SessionClosedError(node_id)     send on a session that has ended
    └── HubConnectionError(target, reason)  connect failed or the connection broke
"""

from __future__ import annotations

from beehive import errors


class HubError(errors.BeehiveError):
    """Base of the hub protocol's errors."""


class HandshakeError(HubError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"bad connection request: {self.reason}"


class WrongNodeError(HubError):
    def __init__(self, node_id: str, resource: str) -> None:
        super().__init__(node_id, resource)
        self.node_id = node_id
        self.resource = resource

    def __str__(self) -> str:
        return f"resource {self.resource!r} does not belong to node {self.node_id!r}"


class SessionClosedError(HubError):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id

    def __str__(self) -> str:
        return f"the session of node {self.node_id!r} has ended"


class HubConnectionError(HubError):
    """The transport could not connect, or the connection broke (wraps library errors)."""

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(target, reason)
        self.target = target
        self.reason = reason

    def __str__(self) -> str:
        return f"connection to {self.target}: {self.reason}"
