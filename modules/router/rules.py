"""The router's rule table, without I/O: Rules and RuleEndpoints in, routes out.

Input: the Rule and RuleEndpoint objects edgecontroller hands the router module
(``rules.kubeedge.io/v1``, `apply`), and the two things to route: a REST request
(`match_rest`: ``/<node>/<namespace>/<path>``) and an edge's upload (`match_upload`:
a message published on a rule's source topic at a node). Output: `Route` s (what to
send, to which provider), the subscribe messages the edges need, and each rule's
status (success and failure counts, last errors).

As cloud/pkg/router: a RuleEndpoint is ``rest``, ``eventbus`` or ``servicebus``
(properties: ``service_port`` for servicebus); a Rule's sourceResource is ``path``
(rest) or ``topic`` and ``node_name`` (eventbus); its targetResource ``topic``
(eventbus), ``path`` (servicebus) or ``resource`` (rest, a URL). A rule naming an
endpoint that does not exist (yet) or with a bad resource is kept as invalid, with
the reason in its status, and becomes valid when the endpoint comes. Topics may not
hold MQTT wildcards (``+``, ``#``): a rule publishes to and subscribes to one topic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

REST, EVENTBUS, SERVICEBUS = "rest", "eventbus", "servicebus"
ENDPOINT_TYPES = frozenset({REST, EVENTBUS, SERVICEBUS})
# The sources that may feed each target type (KubeEdge's supported pairs).
_PAIRS = frozenset({(REST, EVENTBUS), (REST, SERVICEBUS), (EVENTBUS, REST)})
MAX_ERRORS = 5  # last errors kept in a rule's status

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


class RuleError(ValueError):
    """A Rule or a request that cannot be routed; `status` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def has_wildcard(topic: str) -> bool:
    """Whether an MQTT topic holds a wildcard (``+`` or ``#``) or is empty."""
    return not topic or "+" in topic or "#" in topic


@dataclasses.dataclass(slots=True)
class Status:
    """A rule's counts, as RuleStatus (successMessages, failMessages, errors)."""

    success: int = 0
    fail: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def as_object(self) -> Obj:
        return {"successMessages": self.success, "failMessages": self.fail,
                "errors": list(self.errors)}  # fmt: skip

    def count(self, error: str) -> None:
        """One message: a success, or a failure with its error (the last few kept)."""
        if not error:
            self.success += 1
            return
        self.fail += 1
        self.errors.append(error[:256])
        del self.errors[:-MAX_ERRORS]

    def plus(self, more: Status) -> Status:
        """This status with `more` counted on top (what another writer counted, say)."""
        return Status(self.success + more.success, self.fail + more.fail,
                      (self.errors + more.errors)[-MAX_ERRORS:])  # fmt: skip

    def minus(self, written: Status) -> None:
        """Forget what `written` (a copy taken earlier) holds: it is in the Rule now.
        Each failure brought one error, so the failures since are the errors to keep."""
        since = self.fail - written.fail
        self.errors = self.errors[-since:] if since > 0 else []
        self.success -= written.success
        self.fail = since

    def copy(self) -> Status:
        return Status(self.success, self.fail, list(self.errors))


@dataclasses.dataclass(slots=True)
class Rule:
    """One parsed Rule (valid when `problem` is empty)."""

    namespace: str
    name: str
    source: str  # source RuleEndpoint name
    target: str  # target RuleEndpoint name
    source_resource: dict[str, str]
    target_resource: dict[str, str]
    source_type: str = ""  # filled in when the endpoints resolve
    target_type: str = ""
    service_port: str = ""  # the target servicebus endpoint's
    problem: str = ""  # why it cannot route, or ""
    status: Status = dataclasses.field(default_factory=Status)  # as this router knows it
    # Counted here and not yet added to the Rule's status in the API: several routers
    # (replicas) count for one Rule, so each adds its own counts to what the Rule holds.
    unwritten: Status = dataclasses.field(default_factory=Status)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def rest_path(self) -> str:
        """The REST source's path, without slashes at either end."""
        return self.source_resource.get("path", "").strip("/")

    @property
    def source_topic(self) -> str:
        """The MQTT topic an eventbus source subscribes to at the edge: ``<namespace>/<topic>``."""
        return f"{self.namespace}/{self.source_resource.get('topic', '')}"


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where one request or event goes under `rule`."""

    rule: Rule
    node: str
    param: str  # what follows the rule's path in a REST request, or ""


class RuleTable:
    """Rules and RuleEndpoints, indexed for REST paths and edge topics."""

    def __init__(self) -> None:
        self.endpoints: dict[Key, Obj] = {}  # RuleEndpoint spec by (namespace, name)
        self.rules: dict[Key, Rule] = {}  # every Rule seen, valid or not

    # --- input: objects -------------------------------------------------------------

    def apply(self, kind: str, operation: str, obj: Obj) -> list[Rule]:
        """A Rule or RuleEndpoint inserted, updated or deleted; returns the rules whose
        validity or routes may have changed (to subscribe or unsubscribe)."""
        meta = _dict(obj.get("metadata"))
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        if kind == "ruleendpoint":
            if operation == "delete":
                self.endpoints.pop(key, None)
            else:
                self.endpoints[key] = _dict(obj.get("spec"))
            touched = [r for r in self.rules.values()
                       if r.namespace == key[0] and key[1] in (r.source, r.target)]  # fmt: skip
            for rule in touched:
                self._resolve(rule)
            return touched
        if operation == "delete":
            gone = self.rules.pop(key, None)
            return [gone] if gone is not None else []
        rule = _parse_rule(key, obj)
        old = self.rules.get(key)
        if old is not None:
            rule.status, rule.unwritten = old.status, old.unwritten
        else:
            rule.status = status_of(obj)
        self._resolve(rule)
        self.rules[key] = rule
        return [rule]

    def _resolve(self, rule: Rule) -> None:
        rule.problem = ""
        source = self.endpoints.get((rule.namespace, rule.source))
        target = self.endpoints.get((rule.namespace, rule.target))
        for role, name, spec in (("source", rule.source, source), ("target", rule.target, target)):
            if spec is None:
                rule.problem = f"{role} RuleEndpoint {rule.namespace}/{name} does not exist"
                return
        assert source is not None and target is not None
        rule.source_type = str(source.get("ruleEndpointType", ""))
        rule.target_type = str(target.get("ruleEndpointType", ""))
        props = target.get("properties")
        rule.service_port = str(props.get("service_port", "")) if isinstance(props, dict) else ""
        try:
            _check(rule)
        except RuleError as exc:
            rule.problem = str(exc)

    # --- input: traffic -------------------------------------------------------------

    def match_rest(self, path: str) -> Route:
        """The rule for a REST request path ``/<node>/<namespace>/<path>[/<param>]``: the
        rule with the longest path that is a prefix (by whole segments).

        Raises:
            RuleError: 404 when the path has too few segments or no rule matches.
        """
        parts = path.split("?", 1)[0].strip("/").split("/", 2)
        if len(parts) < 3 or not all(parts):
            raise RuleError("expected /<node>/<namespace>/<path>", 404)
        node, namespace, rest = parts
        best: Rule | None = None
        for rule in self.rules.values():
            if rule.problem or rule.source_type != REST or rule.namespace != namespace:
                continue
            prefix = rule.rest_path
            if (rest == prefix or rest.startswith(prefix + "/")) and (
                best is None or len(prefix) > len(best.rest_path)
            ):
                best = rule
        if best is None:
            raise RuleError(f"no rule for /{namespace}/{rest}", 404)
        param = rest[len(best.rest_path) :].strip("/")
        return Route(best, node, param)

    def match_upload(self, node: str, topic: str) -> list[Route]:
        """The rules whose eventbus source is `topic` at `node`."""
        return [
            Route(rule, node, "")
            for rule in self.rules.values()
            if not rule.problem and rule.source_type == EVENTBUS
            and rule.source_resource.get("node_name") == node and rule.source_topic == topic
        ]  # fmt: skip

    def subscriptions(self) -> set[tuple[str, str]]:
        """(node, topic) of every valid eventbus source: what the edges must subscribe to."""
        return {
            (rule.source_resource.get("node_name", ""), rule.source_topic)
            for rule in self.rules.values()
            if not rule.problem and rule.source_type == EVENTBUS
        }

    # --- output: status ---------------------------------------------------------------

    def record(self, rule: Rule, *, error: str = "", at: str = "") -> None:
        """Count one message routed under `rule` (failed when `error` is given)."""
        text = f"{at} {error}".strip() if error else ""
        rule.status.count(text)
        rule.unwritten.count(text)


def publish_topic(rule: Rule, param: str) -> str:
    """The topic an eventbus target publishes to (its topic, then the request's param).

    Raises:
        RuleError: 400 when the param would put a wildcard in the topic.
    """
    topic = rule.target_resource.get("topic", "")
    if param:
        topic = topic.rstrip("/") + "/" + param.lstrip("/")
    if has_wildcard(topic):
        raise RuleError(f"topic {topic!r} holds an MQTT wildcard", 400)
    return topic


def service_path(rule: Rule, param: str) -> str:
    """The servicebus resource ``<port>:<path>`` (servicebus.go GoToTarget)."""
    path = rule.target_resource.get("path", "")
    if param:
        path = path.rstrip("/") + "/" + param.lstrip("/")
    return f"{rule.service_port}:{path}"


def _check(rule: Rule) -> None:
    pair = (rule.source_type, rule.target_type)
    if rule.source_type not in ENDPOINT_TYPES or rule.target_type not in ENDPOINT_TYPES:
        raise RuleError(f"unknown endpoint types {pair}")
    if pair not in _PAIRS:
        raise RuleError(f"no route from {rule.source_type} to {rule.target_type}")
    src, tgt = rule.source_resource, rule.target_resource
    if rule.source_type == REST and not src.get("path", "").strip("/"):
        raise RuleError("sourceResource needs a path")
    if rule.source_type == EVENTBUS:
        if not src.get("node_name"):
            raise RuleError("sourceResource needs node_name")
        if has_wildcard(src.get("topic", "")):
            raise RuleError(f"source topic {src.get('topic', '')!r} is empty or holds a wildcard")
    if rule.target_type == EVENTBUS and has_wildcard(tgt.get("topic", "")):
        raise RuleError(f"target topic {tgt.get('topic', '')!r} is empty or holds a wildcard")
    if rule.target_type == SERVICEBUS:
        if not tgt.get("path"):
            raise RuleError("targetResource needs a path")
        if not rule.service_port.isdigit():
            raise RuleError("servicebus RuleEndpoint needs properties.service_port")
    if rule.target_type == REST and not tgt.get("resource", "").startswith(("http://", "https://")):
        raise RuleError("targetResource needs resource: an http(s) URL")


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _parse_rule(key: Key, obj: Obj) -> Rule:
    spec = _dict(obj.get("spec"))
    return Rule(
        namespace=key[0],
        name=key[1],
        source=str(spec.get("source", "")),
        target=str(spec.get("target", "")),
        source_resource=_strings(spec.get("sourceResource")),
        target_resource=_strings(spec.get("targetResource")),
    )


def status_of(obj: Obj) -> Status:
    """The status already written on the Rule (counts continue across restarts)."""
    found = obj.get("status")
    if not isinstance(found, dict):
        return Status()
    errors = found.get("errors")
    return Status(
        success=int(found.get("successMessages") or 0),
        fail=int(found.get("failMessages") or 0),
        errors=[str(e) for e in errors][-MAX_ERRORS:] if isinstance(errors, list) else [],
    )
