"""URL paths of the Kubernetes REST API, parsed into what a request is about.

Input: the path of an HTTP request; output: a `Target` naming the API group, version,
namespace, resource, name and subresource, or the discovery document asked for.
Layout as k8s.io/apiserver/pkg/endpoints/request/requestinfo.go.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True, slots=True)
class Target:
    """What a path names: a resource (plural set) or a discovery document."""

    group: str = ""
    version: str = ""
    namespace: str = ""
    plural: str = ""
    name: str = ""
    subresource: str = ""
    discovery: str = (
        ""  # "version", "api", "apis", "group", "resources", "health", "jwks", "openid"
    )
    watch: bool = False  # the legacy /watch/ path prefix


_HEALTH = frozenset({"healthz", "livez", "readyz"})


@functools.lru_cache(maxsize=4096)
def parse(path: str) -> Target | None:
    """The target of `path` (without query), None for paths the API does not have."""
    parts = [unquote(p) if "%" in p else p for p in path.split("/") if p]
    if not parts:
        return None
    head = parts[0]
    if head == "version" and len(parts) == 1:
        return Target(discovery="version")
    if head in _HEALTH:
        return Target(discovery="health")
    if parts == ["openid", "v1", "jwks"]:
        return Target(discovery="jwks")
    if parts == [".well-known", "openid-configuration"]:
        return Target(discovery="openid")
    if head == "api":
        if len(parts) == 1:
            return Target(discovery="api")
        return _versioned("", parts[1], parts[2:])
    if head == "apis":
        if len(parts) == 1:
            return Target(discovery="apis")
        if len(parts) == 2:
            return Target(group=parts[1], discovery="group")
        return _versioned(parts[1], parts[2], parts[3:])
    return None


def _versioned(group: str, version: str, rest: list[str]) -> Target | None:
    if not rest:
        return Target(group=group, version=version, discovery="resources")
    watch = rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        # /api/v1/namespaces/{ns}/status is the namespace's own subresource
        if not group and len(rest) == 3 and rest[2] in ("status", "finalize"):
            return Target(version=version, plural="namespaces", name=rest[1], subresource=rest[2])
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return Target(
        group=group,
        version=version,
        namespace=namespace,
        plural=rest[0],
        name=rest[1] if len(rest) > 1 else "",
        subresource=rest[2] if len(rest) > 2 else "",
        watch=watch,
    )
