"""Kubernetes API requests counted by verb, resource and status code, with their latency.

Input: every request an instrumented `kubernetes.client.ApiClient` sends. The one
place all of them pass, typed API methods, watches and `modules.kube.raw` alike, is
``ApiClient.call_api`` calling ``rest_client.request(method, url, ...)``, which
returns the response for every HTTP status (the client raises for errors only
after it); `RequestStats.instrument` wraps that method of one client.
Output: `snapshot`, JSON-ready, for the owner's ``metrics`` command.

Labels as kube-apiserver's ``apiserver_request_total``: the verb (``get``, ``list``,
``watch``, ``create``, ``update``, ``patch``, ``delete``, ``deletecollection``), the
resource with its subresource (``pods/status``; no names, no namespaces, so the set
stays as small as the code's own calls) and the status code (``error`` when no
response came). A watch's latency is the time to its response headers.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any

from modules import histogram

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})  # of a Namespace itself


def classify(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of a request, e.g. ("patch", "pods/status")."""
    parts = urllib.parse.urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        rest = segments[2:]
    elif segments[:1] == ["apis"]:
        rest = segments[3:]
    else:
        return method.lower(), "other"
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        rest = rest[2:]  # namespaced: drop ``namespaces/<ns>``
    if not rest:
        return method.lower(), "other"
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) >= 2
    if method == "GET":
        query = urllib.parse.parse_qs(parts.query)
        watch = query.get("watch", [""])[0] in ("true", "1")
        return ("watch" if watch else "get" if named else "list"), resource
    if method == "DELETE":
        return ("delete" if named else "deletecollection"), resource
    return _VERBS.get(method, method.lower()), resource


class RequestStats:
    """Counts and latencies of the requests of the clients it instrumented; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two dicts: clients are used by many threads
        self._counts: dict[tuple[str, str, str], int] = {}  # (verb, resource, code) -> count
        self._latency: dict[tuple[str, str], histogram.Histogram] = {}  # (verb, resource) ->

    def instrument(self, api_client: Any) -> Any:
        """Count every request of `api_client` from now on; returns it."""
        rest = api_client.rest_client
        send = rest.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            start, code = time.perf_counter(), "error"
            try:
                response = send(method, url, *args, **kwargs)
                code = str(response.status)
                return response
            finally:
                self.record(method, url, code, time.perf_counter() - start)

        rest.request = request
        return api_client

    def record(self, method: str, url: str, code: str, seconds: float) -> None:
        verb, resource = classify(method.upper(), url)
        with self._lock:
            key = (verb, resource, code)
            self._counts[key] = self._counts.get(key, 0) + 1
            latency = self._latency.get((verb, resource))
            if latency is None:
                latency = self._latency[(verb, resource)] = histogram.Histogram(
                    histogram.REQUEST_BUCKETS
                )
            latency.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """``{"requests": [[verb, resource, code, count]...], "latency": [[verb,
        resource, histogram]...]}``."""
        with self._lock:
            return {
                "requests": [[*key, count] for key, count in sorted(self._counts.items())],
                "latency": [[*key, h.snapshot()] for key, h in sorted(self._latency.items())],
            }
