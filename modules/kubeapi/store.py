"""The object store: objects, the cluster-wide resourceVersion, and the event history.

Sans-I/O and not thread-safe: `server.py` holds one lock around every call. Requests
come in as (resource type, namespace, name, decoded body); results go out as stored
`Entry`s (the object and its JSON encoding, encoded once at write time so lists and
watch fan-out only join bytes). Every write takes the next resourceVersion and appends
exactly one `Event` to a bounded history, so event N sits at index N - first; a watch
replays `events_since(rv)` and a version older than the history is 410 Gone, like a
compacted etcd. Writes also queue in `changes` until the persistence layer takes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modules.kubeapi import errors, objects, selectors, strategy
from modules.kubeapi.resources import Catalogue, ResourceType

JsonObj = dict[str, Any]
Predicate = Callable[[JsonObj], bool]

DEFAULT_HISTORY = 10_000
MAX_OBJECT_BYTES = 1_572_864  # etcd's default request limit (1.5 MiB)
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_UNDELETABLE = frozenset({"default", "kube-system", "kube-public"})
_NAMESPACES = "/namespaces"
_CRDS = "apiextensions.k8s.io/customresourcedefinitions"
_PODS = "/pods"


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(obj: JsonObj) -> bytes:
    return _ENCODER.encode(obj).encode()


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored object; `obj` is never mutated once stored."""

    obj: JsonObj
    raw: bytes

    @property
    def rv(self) -> int:
        return int(self.obj["metadata"]["resourceVersion"])


@dataclass(frozen=True, slots=True)
class Event:
    """One write: the new state (the last state for DELETED) and the previous one."""

    rv: int
    key: str  # resource key, group/plural
    namespace: str
    type: str  # ADDED, MODIFIED or DELETED
    entry: Entry
    old: JsonObj | None
    line: bytes = field(repr=False)  # the watch line, `{"type":..,"object":..}\n`


def _line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


class Store:
    """All objects of all types, with a shared resourceVersion counter."""

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        self.catalogue = Catalogue()  # served types; grows with CRDs
        self._objects: dict[str, dict[tuple[str, str], Entry]] = {}  # key -> (ns, name) -> entry
        # key -> value of its kind's indexed field -> (ns, name)s with that value
        self._index: dict[str, dict[str, set[tuple[str, str]]]] = {}
        self._rv = 0  # the last resourceVersion handed out
        self._history: list[Event] = []  # events first_rv .. _rv, consecutive
        self._first_rv = 1  # resourceVersion of _history[0]
        self._history_size = history  # events kept for watch replay
        self.changes: list[Event] = []  # writes not yet taken by persistence

    # -- state -------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def load(self, stored: Iterable[tuple[str, bytes]], rv: int) -> None:
        """Restore objects (resource key, raw JSON) and the counter from persistence."""
        for key, raw in stored:
            obj = json.loads(raw)
            meta = obj["metadata"]
            at = (meta.get("namespace", ""), meta["name"])
            self._objects.setdefault(key, {})[at] = Entry(obj, raw)
            if key == _CRDS:
                self.catalogue.add_crd(obj)
        for key, table in self._objects.items():
            rtype = self.catalogue.by_key(key)
            if rtype is not None and rtype.indexed_field:
                for at, entry in table.items():
                    self._reindex(rtype, at, None, entry.obj)
        self._rv = rv
        self._first_rv = rv + 1

    def bootstrap(self) -> None:
        """Create the namespaces a fresh cluster starts with."""
        nstype = self.catalogue.lookup("", "v1", "namespaces")
        assert nstype is not None
        for name in INITIAL_NAMESPACES:
            if ("", name) not in self._objects.get(_NAMESPACES, {}):
                self.create(nstype, "", {"metadata": {"name": name}})

    def events_since(self, rv: int) -> list[Event]:
        """Events after `rv`, oldest first; 410 Gone once they left the history."""
        if rv >= self._rv:
            return []
        if rv + 1 < self._first_rv:
            raise errors.gone(f"too old resource version: {rv} ({self._first_rv - 1})")
        return self._history[rv + 1 - self._first_rv :]

    def _record(
        self, rtype: ResourceType, ns: str, kind: str, entry: Entry, old: JsonObj | None
    ) -> None:
        event = Event(self._rv, rtype.key, ns, kind, entry, old, _line(kind, entry.raw))
        self._history.append(event)
        self.changes.append(event)
        if len(self._history) > 2 * self._history_size:
            drop = len(self._history) - self._history_size
            del self._history[:drop]
            self._first_rv += drop

    def _commit(
        self, rtype: ResourceType, ns: str, name: str, obj: JsonObj, old: JsonObj | None
    ) -> Entry:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        raw = encode(obj)
        if len(raw) > MAX_OBJECT_BYTES:
            self._rv -= 1
            raise errors.ApiError(413, errors.TOO_LARGE, "etcdserver: request is too large")
        entry = Entry(obj, raw)
        self._objects.setdefault(rtype.key, {})[(ns, name)] = entry
        if rtype.indexed_field:
            self._reindex(rtype, (ns, name), old, obj)
        self._record(rtype, ns, "ADDED" if old is None else "MODIFIED", entry, old)
        if rtype.key == _CRDS:
            self.catalogue.add_crd(obj)
        return entry

    def _remove(self, rtype: ResourceType, ns: str, name: str) -> Entry:
        old = self._objects[rtype.key].pop((ns, name))
        if rtype.indexed_field:
            self._reindex(rtype, (ns, name), old.obj, None)
        self._rv += 1
        obj = dict(old.obj)
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self._rv))
        entry = Entry(obj, encode(obj))
        self._record(rtype, ns, "DELETED", entry, old.obj)
        return entry

    def _reindex(
        self, rtype: ResourceType, at: tuple[str, str], old: JsonObj | None, new: JsonObj | None
    ) -> None:
        """Move `at` in its kind's index from `old`'s value of the field to `new`'s."""
        index = self._index.setdefault(rtype.key, {})
        before = None if old is None else selectors.field_value(old, rtype.indexed_field)
        after = None if new is None else selectors.field_value(new, rtype.indexed_field)
        if before == after:
            return
        if before is not None:
            keys = index.get(before)
            if keys is not None:
                keys.discard(at)
                if not keys:
                    del index[before]
        if after is not None:
            index.setdefault(after, set()).add(at)

    # -- reads -------------------------------------------------------------------

    def get(self, rtype: ResourceType, ns: str, name: str) -> Entry:
        entry = self._objects.get(rtype.key, {}).get((ns, name))
        if entry is None:
            raise errors.not_found(rtype.plural, rtype.group, name)
        return entry

    def list(
        self,
        rtype: ResourceType,
        ns: str,
        *,
        match: Predicate | None = None,
        limit: int = 0,
        after: tuple[str, str] | None = None,
        indexed: str | None = None,
    ) -> tuple[list[Entry], tuple[str, str] | None, int]:
        """Matching entries in (namespace, name) order: (page, last key if more, remaining).
        `indexed`: only entries with this value of the kind's indexed field are read
        (`match` must require it too: it alone decides)."""
        table = self._objects.get(rtype.key, {})
        if indexed is not None and rtype.indexed_field:
            candidates: Iterable[tuple[str, str]] = self._index.get(rtype.key, {}).get(indexed, ())
        else:
            candidates = table
        keys = sorted(
            k for k in candidates if (not ns or k[0] == ns) and (after is None or k > after)
        )
        page: list[Entry] = []
        for i, k in enumerate(keys):
            entry = table[k]
            if match is not None and not match(entry.obj):
                continue
            if limit and len(page) == limit:
                return (
                    page,
                    (
                        page[-1].obj["metadata"].get("namespace", ""),
                        page[-1].obj["metadata"]["name"],
                    ),
                    len(keys) - i,
                )
            page.append(entry)
        return page, None, 0

    # -- writes ------------------------------------------------------------------

    def _scope(self, rtype: ResourceType, ns: str, meta: JsonObj) -> str:
        """The namespace an object lands in; checks the body against the URL."""
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return ""
        body_ns = meta.get("namespace")
        if body_ns and body_ns != ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent "
                "on the request"
            )
        meta["namespace"] = ns
        return ns

    def _require_namespace(self, ns: str) -> None:
        if ns and ("", ns) not in self._objects.get(_NAMESPACES, {}):
            raise errors.not_found("namespaces", "", ns)

    def create(self, rtype: ResourceType, ns: str, body: Any) -> Entry:
        obj = objects.check_shape(rtype, body)
        obj = dict(obj, apiVersion=rtype.api_version, kind=rtype.kind)
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        name = meta["name"] = objects.pick_name(rtype, meta)
        ns = self._scope(rtype, ns, meta)
        objects.check_name(rtype, name, obj)
        strategy.default(rtype, obj)
        strategy.validate_create(rtype, name, obj)
        self._require_namespace(ns)
        if (ns, name) in self._objects.get(rtype.key, {}):
            raise errors.already_exists(rtype.plural, rtype.group, name)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(key, None)
        meta["uid"] = objects.new_uid()
        meta["creationTimestamp"] = objects.now()
        strategy.prepare_create(rtype, obj)
        return self._commit(rtype, ns, name, obj, None)

    def exists(self, rtype: ResourceType, ns: str, name: str) -> bool:
        return (ns, name) in self._objects.get(rtype.key, {})

    def update(
        self, rtype: ResourceType, ns: str, name: str, body: Any, *, subresource: str = ""
    ) -> Entry:
        """Replace the object, or what `subresource` ("status", "approval") covers of it;
        a kind that allows it (events) is created when missing."""
        obj = objects.check_shape(rtype, body)
        obj = dict(obj, apiVersion=rtype.api_version, kind=rtype.kind)
        meta = obj["metadata"] = dict(obj.get("metadata") or {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on "
                f"the URL ({name})"
            )
        meta["name"] = name
        self._scope(rtype, ns, meta)
        if rtype.create_on_update and not subresource and not self.exists(rtype, ns, name):
            return self.create(rtype, ns, obj)
        old = self.get(rtype, ns, name)
        given = meta.get("resourceVersion")
        if given and given != old.obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype.plural, rtype.group, name, errors.STALE)
        strategy.default(rtype, obj)
        new = strategy.prepare_update(rtype, obj, old.obj, subresource=subresource)
        strategy.validate_update(rtype, name, new, old.obj, subresource=subresource)
        if objects.same_content(new, old.obj):
            return old
        if _delete_during_update(new, old.obj):
            self._commit(rtype, ns, name, new, old.obj)
            return self._remove(rtype, ns, name)
        return self._commit(rtype, ns, name, new, old.obj)

    def delete(
        self, rtype: ResourceType, ns: str, name: str, options: JsonObj
    ) -> tuple[Entry, bool]:
        """Delete, or only mark for deletion: (last state, whether it is gone)."""
        entry = self.get(rtype, ns, name)
        _check_preconditions(rtype, entry.obj, options.get("preconditions") or {})
        if rtype.key == _NAMESPACES and name in _UNDELETABLE:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            )
        if rtype.key == _PODS:
            return self._delete_gracefully(rtype, ns, name, entry, options)
        if entry.obj["metadata"].get("finalizers"):
            return self._mark_deleted(rtype, ns, name, entry, 0), False
        return self._delete_now(rtype, ns, name)

    def _delete_now(self, rtype: ResourceType, ns: str, name: str) -> tuple[Entry, bool]:
        if rtype.key == _NAMESPACES:
            self._delete_all(lambda key, k: k[0] == name and key != _NAMESPACES)
        elif rtype.key == _CRDS:
            doomed = {t.key for t in self.catalogue.types_of_crd(name)}
            self._delete_all(lambda key, k: key in doomed)
            self.catalogue.remove_crd(name)
        return self._remove(rtype, ns, name), True

    def _delete_gracefully(
        self, rtype: ResourceType, ns: str, name: str, entry: Entry, options: JsonObj
    ) -> tuple[Entry, bool]:
        """rest.BeforeDelete for pods: every delete first writes deletionTimestamp and
        deletionGracePeriodSeconds (now + grace); with grace 0 and no finalizers the pod
        then goes. One already being deleted may only have its grace period shortened."""
        meta = entry.obj["metadata"]
        grace = _grace_period(entry.obj, options)
        if meta.get("deletionTimestamp"):
            before = meta.get("deletionGracePeriodSeconds")
            if not before:  # marked with grace 0 and not gone: finish it
                if meta.get("finalizers"):
                    return entry, False
                return self._delete_now(rtype, ns, name)
            if options.get("gracePeriodSeconds") is None or grace >= before:
                return entry, False  # graceful deletion is pending: nothing changes
            start = objects.shifted(meta["deletionTimestamp"], grace - before)
            entry = self._mark_deleted(rtype, ns, name, entry, grace, at=start)
        else:
            entry = self._mark_deleted(rtype, ns, name, entry, grace)
        if grace or entry.obj["metadata"].get("finalizers"):
            return entry, False
        return self._delete_now(rtype, ns, name)

    def _mark_deleted(
        self, rtype: ResourceType, ns: str, name: str, entry: Entry, grace: int, at: str = ""
    ) -> Entry:
        """Set deletionTimestamp (now + grace unless given) and deletionGracePeriodSeconds;
        an object already marked stays as it is."""
        meta = entry.obj["metadata"]
        if meta.get("deletionTimestamp") and not at:
            return entry
        obj = dict(entry.obj)
        stamp = at or objects.shifted(objects.now(), grace)
        obj["metadata"] = dict(meta, deletionTimestamp=stamp, deletionGracePeriodSeconds=grace)
        return self._commit(rtype, ns, name, obj, entry.obj)

    def _delete_all(self, doomed: Callable[[str, tuple[str, str]], bool]) -> None:
        for key, table in list(self._objects.items()):
            rtype = self.catalogue.by_key(key)
            for k in sorted(k for k in table if doomed(key, k)):
                if rtype is not None:
                    self._remove(rtype, k[0], k[1])
                else:
                    del table[k]


def _check_preconditions(rtype: ResourceType, obj: JsonObj, pre: JsonObj) -> None:
    """rest.BeforeDelete: a conflict named by kind, as "ConfigMap" or "Rule.rules.kubeedge.io"."""
    meta = obj["metadata"]
    for field_name, label, hint in (
        ("uid", "UID", "deleted and then recreated"),
        ("resourceVersion", "ResourceVersion", "modified"),
    ):
        want = pre.get(field_name)
        if want is not None and want != meta.get(field_name):
            why = (
                f"the {label} in the precondition ({want}) does not match the {label} in record "
                f"({meta.get(field_name)}). The object might have been {hint}"
            )
            raise errors.conflict(rtype.kind, rtype.group, meta["name"], why)


def _delete_during_update(new: JsonObj, old: JsonObj) -> bool:
    """The API server's rule: an update that leaves no finalizers on an object marked
    for deletion without a grace period (still) running removes it. A pod in its grace
    period stays, status updates and all, until deleted with grace 0."""
    before = old["metadata"]
    return (
        not new["metadata"].get("finalizers")
        and bool(before.get("deletionTimestamp"))
        and not before.get("deletionGracePeriodSeconds")
    )


def _grace_period(obj: JsonObj, options: JsonObj) -> int:
    """podStrategy.CheckGracefulDelete: the request's grace period, else the pod's own;
    0 for a pod no node runs (unbound, or finished), at least 1 when negative."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return int(grace) if int(grace) >= 0 else 1
