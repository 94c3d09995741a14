"""The servicebus module: the router's requests to a local HTTP app.

Input: its mailbox: the router's servicebus requests from edgehub
(`modules.userbus`: operation the HTTP method, resource ``<port>:<path>``, content
an HTTPRequest). Output: the app's answer (an HTTPResponse, operation ``upload``,
parent the request) to edgehub; 400 for a bad resource, 502 when the app cannot be
reached, 504 when it does not answer within `timeout`. Calls run on the workers
"beehive-servicebus-*", so a slow app holds up no other request. As
edge/pkg/servicebus.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import urllib.error
import urllib.request
from typing import Any

from beehive import errors as beehive_errors
from beehive.message import Message
from beehive.module import Module
from modules import contract, userbus

log = logging.getLogger("modules.servicebus")

_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceBusSettings:
    """Where local apps listen and how long they may take (serviceBus.* in edgecore.yaml)."""

    host: str = "127.0.0.1"  # apps are called on this host, at the port the rule names
    timeout: float = dataclasses.field(default=30.0, metadata={"min": 0.01})
    workers: int = dataclasses.field(default=8, metadata={"min": 1})
    hub_module: str = contract.EDGEHUB  # where answers go


class ServiceBus(Module):
    """KubeEdge's servicebus (see the module docstring)."""

    settings_type = ServiceBusSettings

    def on_start(self) -> None:
        self._settings: ServiceBusSettings = self.settings or ServiceBusSettings()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._settings.workers, thread_name_prefix="beehive-servicebus"
        )

    def on_stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def on_message(self, message: Message) -> None:
        self._pool.submit(self._call, message)

    def _call(self, message: Message) -> None:
        port, _, path = message.route.resource.partition(":")
        content = message.content if isinstance(message.content, dict) else {}
        if not port.isdigit() or not 0 < int(port) < 65536:
            self._answer(message, 400, {}, f"bad resource {message.route.resource!r}".encode())
            return
        url = f"http://{self._settings.host}:{port}/{path.lstrip('/')}"
        method = message.route.operation.upper() or "GET"
        body = userbus.decode_body(content.get("body"))
        request = urllib.request.Request(url, data=body or None, method=method,
                                         headers=_headers(content.get("header")))  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self._settings.timeout) as resp:
                self._answer(message, resp.status, _header_lists(resp.headers), resp.read())
        except urllib.error.HTTPError as exc:
            self._answer(message, exc.code, _header_lists(exc.headers), exc.read())
        except TimeoutError:
            self._answer(
                message, 504, {}, f"{url}: no answer in {self._settings.timeout:g} s".encode()
            )
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            status = 504 if isinstance(reason, TimeoutError) else 502
            self._answer(message, status, {}, f"{url}: {reason}".encode())

    def _answer(self, message: Message, status: int, header: dict[str, list[str]],
                body: bytes) -> None:  # fmt: skip
        log.info("servicebus: %s %s -> %d (%d bytes)", message.route.operation,
                 message.route.resource, status, len(body))  # fmt: skip
        try:
            self.hive.send(
                self._settings.hub_module, userbus.http_reply(message, status, body, header)
            )
        except beehive_errors.BeehiveError as exc:
            log.error(
                "servicebus: cannot pass the answer to %s: %s", self._settings.hub_module, exc
            )


def _headers(header: Any) -> dict[str, str]:
    if not isinstance(header, dict):
        return {}
    out = {}
    for key, value in header.items():
        if str(key).lower() not in _HOP_HEADERS:
            out[str(key)] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def _header_lists(headers: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in headers.items() if headers is not None else ():
        if key.lower() not in _HOP_HEADERS:
            out.setdefault(key, []).append(value)
    return out
