"""Shared checks for the API server's tests: the error a call must fail with; raw
requests (through the client, or on a TLS socket of one's own)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from modules.kubeapi import EmbeddedKubeAPI


def status_of(exc: client.ApiException) -> dict[str, Any]:
    """The `Status` body of a failed call, checked for the shape every failure has."""
    body: dict[str, Any] = json.loads(exc.body or "")
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def expect_failure(call: Callable[[], Any], code: int, reason: str, text: str) -> dict[str, Any]:
    """Run `call`; it must fail with `code` and `reason`, its message containing `text`."""
    with pytest.raises(client.ApiException) as info:
        call()
    body = status_of(info.value)
    assert (info.value.status, body["reason"]) == (code, reason), body
    assert text in body["message"], body["message"]
    return body


def raw_call(api_client: client.ApiClient, method: str, path: str, body: Any = None) -> Any:
    """A request the typed client has no method for: (status, decoded JSON body)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response = api_client.call_api(
        *api_client.param_serialize(
            method, path, body=body, header_params=headers, auth_settings=["BearerToken"]
        )
    )
    return response.status, json.loads(response.read())


def address(server: EmbeddedKubeAPI) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def tls_context(server: EmbeddedKubeAPI) -> ssl.SSLContext:
    """A client context that trusts the server's CA (and nothing else)."""
    return ssl.create_default_context(cadata=server.ca_pem.decode())


def tls_socket(server: EmbeddedKubeAPI, timeout: float = 5.0) -> ssl.SSLSocket:
    """A TLS connection to the server, on which a test writes requests by hand."""
    host, port = address(server)
    raw = socket.create_connection((host, port), timeout=timeout)
    return tls_context(server).wrap_socket(raw, server_hostname=host)
