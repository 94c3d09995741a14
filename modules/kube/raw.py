"""Plain-JSON requests through the official client, without its model validation.

The generated client validates request bodies against its models before sending,
which refuses objects a real API server accepts (a Node whose ``nodeInfo`` lacks
fields, say). Objects that come from edges are passed on as they are, through the
client's own transport (configuration, auth, TLS), and answered as plain JSON.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from kubernetes import client

from beehive import codec


class BadName(ValueError):
    """A name that cannot be one segment of a request path."""


def segment(name: str) -> str:
    """A name as one segment of a request path, quoted as the generated client quotes
    path parameters (``?`` and ``#`` included).

    Quoting alone does not keep a name in its segment: kube-apiserver decodes ``%2F``
    before it routes, so ``ns%2Fconfigmaps%2Fcm`` as a namespace reads that ConfigMap.
    So a name is first checked as Kubernetes checks path segment names
    (apimachinery's ValidatePathSegmentName): no ``/`` or ``%``, not ``.`` or ``..``.
    A name from an edge that breaks this names no object, and is refused here.

    Raises:
        BadName: `name` is empty, ``.`` or ``..``, or holds ``/`` or ``%``.
    """
    if name in ("", ".", "..") or "/" in name or "%" in name:
        raise BadName(f"{name[:64]!r} is not a valid name: a name may not be empty, '.' or"
                      " '..', nor contain '/' or '%'")  # fmt: skip
    return urllib.parse.quote(name, safe="")


def request(
    api_client: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
    timeout: float | None = None,
) -> Any:
    """Send one request and return its JSON body (`timeout`: seconds for the whole
    request, none by default).

    Raises:
        kubernetes.client.ApiException: the server answered with an error status.
    """
    headers = {"Accept": "application/json", "Content-Type": content_type}
    method_, url, headers_, body_, _ = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(
        method_, url, header_params=headers_, body=body_, _request_timeout=timeout
    )
    data: bytes = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status < 300:
        text = data.decode("utf-8", "replace")
        raise client.ApiException(status=response.status, reason=response.reason, body=text)
    return codec.loads(data) if data else None


def stream(
    api_client: client.ApiClient, path: str, *, query: list[tuple[str, str]], timeout: float
) -> Any:
    """A GET whose response is read by the caller as it comes (a watch): the open
    urllib3 response, to `release_conn` when done.

    Raises:
        kubernetes.client.ApiException: the server answered with an error status.
    """
    method_, url, headers_, body_, _ = api_client.param_serialize(
        method="GET",
        resource_path=path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.rest_client.request(  # type: ignore[no-untyped-call]
        method_, url, headers=headers_, body=body_, _request_timeout=timeout
    )
    raw_response = response.response
    if not 200 <= raw_response.status < 300:
        text = raw_response.read().decode("utf-8", "replace")
        raw_response.release_conn()
        raise client.ApiException(status=raw_response.status, reason=raw_response.reason, body=text)
    return raw_response


def shutdown(response: Any) -> None:
    """End a streaming response from another thread: a blocked read returns (urllib3's
    `shutdown`, 2.3 and later; `close` alone does not wake a reader). A response its
    reader already ended (closed: ValueError; released to the pool: RuntimeError) is
    closed again, which does nothing."""
    try:
        response.shutdown()
    except (AttributeError, OSError, ValueError, RuntimeError):
        response.close()
