"""Request handling: an HTTP request's parts in, a status code and JSON bytes out.

`http.py` hands each request here as (method, path, query, content type, body bytes);
this layer routes it (`routing.py`), decodes the body, calls the `Store` under one lock,
commits the writes to persistence before answering, and wakes the watches (`watch.py`).
Service account tokens (the `token` subresource) are issued by `tokens.py`.
Transport-free: tests and the HTTP server drive it the same way.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from modules.kubeapi import errors, patch, routing, selectors, tokens, watch
from modules.kubeapi.persistence import SqlitePersistence
from modules.kubeapi.resources import ResourceType
from modules.kubeapi.store import Entry, Store, encode

JsonObj = dict[str, Any]
Query = dict[str, str]

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's MaxRequestBodyBytes
VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "1970-01-01T00:00:00Z",
    "goVersion": "",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: status code and JSON body."""

    code: int
    body: bytes


def _ok(raw: bytes, code: int = 200) -> Response:
    return Response(code, raw)


def _json(obj: JsonObj, code: int = 200) -> Response:
    return Response(code, encode(obj))


class KubeApi:
    """The store behind a lock, with persistence and watch wake-ups."""

    def __init__(
        self, *, persistence: SqlitePersistence | None = None, history: int | None = None
    ) -> None:
        self.store = Store() if history is None else Store(history=history)  # all objects
        self.cond = threading.Condition()  # guards the store; notified on every write
        self.stopping = False  # set on shutdown so open watches end
        self._persistence = persistence  # commits writes before replies, or None
        self.tokens = tokens.TokenIssuer(persistence)  # signs service account tokens
        self.base_url = ""  # where clients reach this API, for the OpenID discovery document
        with self.cond:
            if persistence is not None:
                stored, rv = persistence.load()
                self.store.load(stored, rv)
            self.store.bootstrap()
            self._flush()

    def _flush(self) -> None:
        """Commit queued writes, then wake the watches; called with the lock held."""
        changes = self.store.changes
        if not changes:
            return
        self.store.changes = []
        if self._persistence is not None:
            self._persistence.write(changes)
        self.cond.notify_all()

    def shutdown(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    # -- dispatch ----------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Query, content_type: str, body: bytes
    ) -> Response:
        """Answer one non-watch request; every failure becomes a `Status` body."""
        try:
            return self._handle(method, path, query, content_type, body)
        except errors.ApiError as exc:
            return _json(exc.status(), exc.code)
        except Exception:  # a bug here must not take the server down: answer 500
            _log.exception("%s %s failed", method, path)
            failure = errors.ApiError(
                500, errors.INTERNAL, "an error on the server prevented the request from succeeding"
            )
            return _json(failure.status(), failure.code)

    def resolve(self, path: str) -> tuple[routing.Target, ResourceType | None]:
        target = routing.parse(path)
        if target is None:
            raise errors.unknown_resource()
        if not target.plural:
            return target, None
        with self.cond:
            rtype = self.store.catalogue.lookup(target.group, target.version, target.plural)
        if rtype is None or (target.namespace and not rtype.namespaced):
            raise errors.unknown_resource()
        if target.subresource and not rtype.serves(target.subresource):
            raise errors.unknown_resource()
        return target, rtype

    def _handle(
        self, method: str, path: str, query: Query, content_type: str, body: bytes
    ) -> Response:
        target, rtype = self.resolve(path)
        if rtype is None:
            return self._discovery(method, target)
        if target.subresource == "token":
            if method != "POST":
                raise _not_allowed()
            with self.cond:
                issued = tokens.request_token(
                    self.store, self.tokens, target.namespace, target.name, _decode(body)
                )
            return _json(issued, 201)
        if method == "GET":
            if target.name:
                with self.cond:
                    return _ok(self.store.get(rtype, target.namespace, target.name).raw)
            return self._list(rtype, target.namespace, query)
        if method == "POST" and not target.name:
            return self._write(
                lambda: self.store.create(rtype, target.namespace, _decode(body)), 201
            )
        if method == "PUT" and target.name:
            return self._put(rtype, target, _decode(body))
        if method == "PATCH" and target.name:
            return self._patch(rtype, target, content_type, body)
        if method == "DELETE" and not target.subresource:
            return self._delete(rtype, target, query, body)
        raise _not_allowed()

    def _write(self, operation: Any, code: int = 200) -> Response:
        with self.cond:
            try:
                entry: Entry = operation()
            finally:
                self._flush()
        return _ok(entry.raw, code)

    # -- verbs -------------------------------------------------------------------

    def _put(self, rtype: ResourceType, target: routing.Target, document: Any) -> Response:
        """Update; 201 when it created the object (kinds that allow create on update)."""
        with self.cond:
            created = rtype.create_on_update and not self.store.exists(
                rtype, target.namespace, target.name
            )
            try:
                entry = self.store.update(
                    rtype, target.namespace, target.name, document, subresource=target.subresource
                )
            finally:
                self._flush()
        return _ok(entry.raw, 201 if created and not target.subresource else 200)

    def _list(self, rtype: ResourceType, ns: str, query: Query) -> Response:
        selection = selectors.select(rtype, query)
        limit = _int(query.get("limit", "0"))
        after = _decode_continue(query["continue"]) if query.get("continue") else None
        with self.cond:
            page, last, remaining = self.store.list(
                rtype, ns, match=selection.match, limit=limit, after=after,
                indexed=selection.indexed,
            )  # fmt: skip
            rv = self.store.resource_version
        meta: JsonObj = {"resourceVersion": str(rv)}
        if last is not None:
            meta["continue"] = _encode_continue(last, rv)
            meta["remainingItemCount"] = remaining
        head = encode(
            {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": meta}
        )
        return _ok(head[:-1] + b',"items":[' + b",".join(e.raw for e in page) + b"]}")

    def _patch(
        self, rtype: ResourceType, target: routing.Target, content_type: str, body: bytes
    ) -> Response:
        document = _decode(body)

        def operation() -> Entry:
            current = self.store.get(rtype, target.namespace, target.name)
            patched = patch.apply(content_type, current.obj, document, custom=rtype.custom)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch does not result in an object")
            return self.store.update(
                rtype, target.namespace, target.name, patched, subresource=target.subresource
            )

        return self._write(operation)

    def _delete(
        self, rtype: ResourceType, target: routing.Target, query: Query, body: bytes
    ) -> Response:
        options: JsonObj = _decode(body) if body.strip() else {}
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = _int(query["gracePeriodSeconds"])
        if not target.name:
            return self._delete_collection(rtype, target.namespace, query, options)
        with self.cond:
            try:
                entry, gone = self.store.delete(rtype, target.namespace, target.name, options)
            finally:
                self._flush()
        if rtype.returns_deleted or not gone:
            return _ok(entry.raw)
        return _json(
            errors.success(rtype.plural, rtype.group, target.name, entry.obj["metadata"]["uid"])
        )

    def _delete_collection(
        self, rtype: ResourceType, ns: str, query: Query, options: JsonObj
    ) -> Response:
        selection = selectors.select(rtype, query)
        with self.cond:
            try:
                page, _, _ = self.store.list(
                    rtype, ns, match=selection.match, indexed=selection.indexed
                )
                done = [
                    self.store.delete(rtype, _ns_of(e), e.obj["metadata"]["name"], options)[0]
                    for e in page
                ]
            finally:
                self._flush()
            rv = self.store.resource_version
        head = encode(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(rv)},
            }
        )
        return _ok(head[:-1] + b',"items":[' + b",".join(e.raw for e in done) + b"]}")

    def _discovery(self, method: str, target: routing.Target) -> Response:
        if method != "GET":
            raise _not_allowed()
        catalogue = self.store.catalogue
        with self.cond:
            if target.discovery == "version":
                return _json(VERSION_INFO)
            if target.discovery == "health":
                return Response(200, b"ok")
            if target.discovery == "jwks":
                return _json(self.tokens.jwks())
            if target.discovery == "openid":
                return _json(tokens.openid_configuration(self.base_url))
            if target.discovery == "api":
                return _json(catalogue.core_versions_document())
            if target.discovery == "apis":
                return _json(catalogue.group_list_document())
            if target.discovery == "group" and catalogue.has_group(target.group):
                return _json(catalogue.group_document(target.group))
            document = catalogue.resource_list_document(target.group, target.version)
        if target.discovery == "resources" and document is not None:
            return _json(document)
        raise errors.unknown_resource()

    def watch(self, rtype: ResourceType, target: routing.Target, query: Query) -> watch.WatchStream:
        """A watch stream; raises `ApiError` for a bad request before anything is sent."""
        return watch.WatchStream(self, rtype, target.namespace, query)


def _not_allowed() -> errors.ApiError:
    return errors.ApiError(
        405,
        errors.METHOD_NOT_ALLOWED,
        "the server does not allow this method on the requested resource",
    )


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise errors.bad_request(f"invalid integer: {text!r}") from None


def _encode_continue(last: tuple[str, str], rv: int) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{last[0]}/{last[1]}"})
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
        ns, _, name = str(start).partition("/")
        return ns, name
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid") from None


def _ns_of(entry: Entry) -> str:
    return str(entry.obj["metadata"].get("namespace", ""))
