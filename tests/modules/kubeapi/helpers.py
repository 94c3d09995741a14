"""Shared checks for the API server's tests: the error a call must fail with."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client


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
        *api_client.param_serialize(method, path, body=body, header_params=headers)
    )
    return response.status, json.loads(response.read())
