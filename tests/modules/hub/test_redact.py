"""Secret values are hidden wherever a message is shown; everything else is left alone."""

from __future__ import annotations

from typing import Any

from modules.hub.redact import REDACTED, redacted

SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "default"},
    "data": {"password": "czNjcjN0"},
    "stringData": {"token": "s3cr3t"},
}


def shown(content: Any) -> Any:
    return redacted({"header": {}, "route": {}, "content": content})["content"]


def test_a_secret_keeps_its_keys_but_not_its_values():
    content = shown(SECRET)
    assert content["data"] == {"password": REDACTED}
    assert content["stringData"] == {"token": REDACTED}
    assert content["metadata"] == SECRET["metadata"]
    assert SECRET["data"] == {"password": "czNjcjN0"}  # the input is not changed


def test_secrets_nested_in_lists_and_replies_are_hidden_too():
    content = shown({"Object": [SECRET, {"kind": "ConfigMap", "data": {"a": "b"}}]})
    assert "s3cr3t" not in repr(content) and "czNjcjN0" not in repr(content)
    assert content["Object"][1]["data"] == {"a": "b"}


def test_a_malformed_secret_data_field_is_hidden_whole():
    assert shown({"kind": "Secret", "data": "czNjcjN0"})["data"] == REDACTED
