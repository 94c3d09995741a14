"""SecretStore: the Secrets in which cloudcore keeps its CA, server certificate and token.

Input: a `kubernetes.client.CoreV1Api`; output: the byte values of Secrets in one
namespace (``kubeedge`` by default), base64-coded on the wire as Kubernetes wants.
Creation is race-safe between replicas: `create_or_read` creates and, on 409, reads
back what the other replica created, so both end up with the same values.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException


def _encode(data: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in data.items()}


def _decode(secret: Any) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


class SecretStore:
    """Reads and writes opaque Secrets in `namespace` (see the module docstring)."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core = core  # CoreV1Api of the cluster
        self.namespace = namespace  # namespace of the Secrets, created on first use

    def ensure_namespace(self) -> None:
        """Create the namespace if missing (409 from a concurrent creator is fine)."""
        try:
            self.core.create_namespace({"metadata": {"name": self.namespace}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def read(self, name: str) -> dict[str, bytes] | None:
        """The Secret's data, or None when it does not exist."""
        try:
            return _decode(self.core.read_namespaced_secret(name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_or_read(self, name: str, data: Mapping[str, bytes]) -> dict[str, bytes]:
        """Create the Secret with `data`; if it exists already, return what it holds."""
        try:
            self.core.create_namespaced_secret(self.namespace, self._body(name, data))
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing = self.read(name)
            if existing is None:  # deleted between our create and read: try once more
                return self.create_or_read(name, data)
            return existing
        return dict(data)

    def write(self, name: str, data: Mapping[str, bytes]) -> None:
        """Create or replace the Secret with exactly `data`."""
        body = self._body(name, data)
        try:
            self.core.replace_namespaced_secret(name, self.namespace, body)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, self.namespace, body)

    def _body(self, name: str, data: Mapping[str, bytes]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": self.namespace},
            "type": "Opaque",
            "data": _encode(data),
        }
