"""Label and field selectors, parsed from the query strings the client sends.

Input: the `labelSelector` / `fieldSelector` query values; output: a predicate over a
stored object (a JSON dict). Grammar as k8s.io/apimachinery/pkg/labels/selector.go
(`=`, `==`, `!=`, `in (...)`, `notin (...)`, `key`, `!key`) and fields/selector.go
(`=`, `==`, `!=`, comma-separated, on the field labels each resource declares).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modules.kubeapi import errors
from modules.kubeapi.resources import ResourceType

JsonObj = dict[str, Any]
Predicate = Callable[[JsonObj], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")
# Field values are free text (an apiVersion has a "/", a time a ":"), up to the next comma.
_FIELD_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([^=!]*?)\s*$")
# Field labels whose value lives elsewhere in the object (the event's "source" is its
# source.component; "name" is kept on some kinds for compatibility, as upstream).
_FIELD_PATHS = {"source": "source.component", "name": "metadata.name"}


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    match = _EQ_TERM.match(term)
    if match:
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET_TERM.match(term)
    if not match:
        raise errors.bad_request(f"unable to parse requirement: {term.strip()!r}")
    negate, key, op, values = match.groups()
    if op is None:
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    if negate:
        raise errors.bad_request(f"unable to parse requirement: {term.strip()!r}")
    allowed = {v.strip() for v in values.split(",") if v.strip()}
    if op == "in":
        return lambda labels: labels.get(key) in allowed
    return lambda labels: labels.get(key) not in allowed


def label_selector(text: str | None) -> Predicate | None:
    """A predicate for `labelSelector`, or None when it selects everything."""
    if not text or not text.strip():
        return None
    terms = [_label_term(t) for t in _split_terms(text)]

    def matches(obj: JsonObj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def field_value(obj: JsonObj, path: str) -> str:
    """A field's value as the server compares it: a string, "" when absent."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FieldTerm = tuple[str, bool, str]  # (field label, equal (== / =) or not (!=), value)


def field_terms(
    text: str | None, allowed: frozenset[str], *, conversion: bool = True
) -> list[FieldTerm]:
    """The terms of `fieldSelector`; unknown field labels are a 400 as on a real server,
    worded as the kind's field label conversion words it (`conversion`) or as the default
    one for kinds without their own."""
    if not text or not text.strip():
        return []
    terms: list[FieldTerm] = []
    for term in _split_terms(text):
        match = _FIELD_TERM.match(term)
        if not match:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        label, op, value = match.groups()
        if label not in allowed and conversion:
            raise errors.bad_request(f"field label not supported: {label}")
        if label not in allowed:
            raise errors.bad_request(
                f'"{label}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        terms.append((label, op != "!=", value))
    return terms


def field_selector(terms: list[FieldTerm]) -> Predicate | None:
    """A predicate for the terms of a `fieldSelector` (`field_terms`), None for none."""
    if not terms:
        return None
    paths = [(_FIELD_PATHS.get(label, label), eq, value) for label, eq, value in terms]

    def matches(obj: JsonObj) -> bool:
        return all((field_value(obj, p) == v) == eq for p, eq, v in paths)

    return matches


@dataclass(frozen=True, slots=True)
class Selection:
    """What a list, watch or delete-collection query selects."""

    match: Predicate | None  # the label and field selectors; None: everything
    indexed: str | None  # the value they require of the kind's indexed field (None: any)


def select(rtype: ResourceType, query: Mapping[str, str]) -> Selection:
    """The query's `labelSelector` and `fieldSelector` for `rtype` (400 if bad)."""
    terms = field_terms(
        query.get("fieldSelector"), rtype.field_labels, conversion=rtype.field_conversion
    )
    match = combine(label_selector(query.get("labelSelector")), field_selector(terms))
    indexed = None
    if rtype.indexed_field:
        for label, eq, value in terms:
            if label == rtype.indexed_field and eq:
                indexed = value
    return Selection(match, indexed)


def combine(*predicates: Predicate | None) -> Predicate | None:
    """All of the given predicates; None when there are none."""
    active = [p for p in predicates if p is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda obj: all(p(obj) for p in active)
