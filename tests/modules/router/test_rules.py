"""The router's rule table without I/O: endpoints, rules, matching and status."""

from __future__ import annotations

from typing import Any

import pytest

from modules.router import rules


def endpoint(name: str, kind: str, **props: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"ruleEndpointType": kind}
    if props:
        spec["properties"] = props
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def rule(name: str, source: str, target: str, src: dict[str, str], tgt: dict[str, str]) -> Any:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"source": source, "sourceResource": src, "target": target, "targetResource": tgt},
    }


@pytest.fixture
def table() -> rules.RuleTable:
    t = rules.RuleTable()
    t.apply("ruleendpoint", "insert", endpoint("rest", "rest"))
    t.apply("ruleendpoint", "insert", endpoint("bus", "eventbus"))
    t.apply("ruleendpoint", "insert", endpoint("svc", "servicebus", service_port="8080"))
    return t


def test_a_rest_path_matches_the_longest_rule_prefix(table: rules.RuleTable) -> None:
    table.apply("rule", "insert", rule("a", "rest", "bus", {"path": "/a"}, {"topic": "t"}))
    table.apply("rule", "insert", rule("ab", "rest", "svc", {"path": "/a/b"}, {"path": "/x"}))
    found = table.match_rest("/edge-1/default/a/b/c?q=1")
    assert (found.rule.name, found.node, found.param) == ("ab", "edge-1", "c")
    assert table.match_rest("/edge-1/default/a").rule.name == "a"
    assert rules.service_path(found.rule, found.param) == "8080:/x/c"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/edge-1/default/zzz", id="no rule for the path"),
        pytest.param("/edge-1/other/a", id="another namespace"),
        pytest.param("/edge-1", id="too few segments"),
        pytest.param("/edge-1/default/ab", id="a prefix that is not a whole segment"),
    ],
)
def test_a_rest_path_without_a_rule_is_404(table: rules.RuleTable, path: str) -> None:
    table.apply("rule", "insert", rule("a", "rest", "bus", {"path": "/a"}, {"topic": "t"}))
    with pytest.raises(rules.RuleError) as caught:
        table.match_rest(path)
    assert caught.value.status == 404


def test_a_rule_naming_a_missing_endpoint_is_invalid_until_it_comes() -> None:
    table = rules.RuleTable()
    table.apply("ruleendpoint", "insert", endpoint("rest", "rest"))
    table.apply("rule", "insert", rule("r", "rest", "bus", {"path": "a"}, {"topic": "t"}))
    assert "target RuleEndpoint default/bus does not exist" in table.rules["default", "r"].problem
    with pytest.raises(rules.RuleError):
        table.match_rest("/n/default/a")
    table.apply("ruleendpoint", "insert", endpoint("bus", "eventbus"))
    assert table.rules["default", "r"].problem == ""
    assert table.match_rest("/n/default/a").rule.name == "r"
    table.apply("ruleendpoint", "delete", endpoint("bus", "eventbus"))
    assert table.rules["default", "r"].problem


@pytest.mark.parametrize(
    ("source", "target", "src", "tgt", "problem"),
    [
        pytest.param("bus", "rest", {"topic": "a/+", "node_name": "n"},
                     {"resource": "http://x/"}, "wildcard", id="a source topic with +"),
        pytest.param("rest", "bus", {"path": "a"}, {"topic": "a/#"}, "wildcard",
                     id="a target topic with #"),
        pytest.param("bus", "rest", {"topic": "t"}, {"resource": "http://x/"}, "node_name",
                     id="an eventbus source without node_name"),
        pytest.param("rest", "rest", {"path": "a"}, {"resource": "http://x/"}, "no route",
                     id="rest to rest"),
        pytest.param("bus", "rest", {"topic": "t", "node_name": "n"}, {"resource": "ftp://x"},
                     "http", id="a target that is not a URL"),
    ],
)  # fmt: skip
def test_bad_rules_are_kept_with_their_problem(
    table: rules.RuleTable, source: str, target: str, src: Any, tgt: Any, problem: str
) -> None:
    table.apply("rule", "insert", rule("bad", source, target, src, tgt))
    assert problem in table.rules["default", "bad"].problem
    assert table.subscriptions() == set()


def test_a_param_putting_a_wildcard_in_the_topic_is_400(table: rules.RuleTable) -> None:
    table.apply("rule", "insert", rule("a", "rest", "bus", {"path": "a"}, {"topic": "t"}))
    found = table.match_rest("/n/default/a/x")
    assert rules.publish_topic(found.rule, found.param) == "t/x"
    found = table.match_rest("/n/default/a/+")
    with pytest.raises(rules.RuleError) as caught:
        rules.publish_topic(found.rule, found.param)
    assert caught.value.status == 400


def test_uploads_match_node_and_namespaced_topic(table: rules.RuleTable) -> None:
    table.apply("rule", "insert", rule("up", "bus", "rest", {"topic": "t", "node_name": "n1"},
                                       {"resource": "http://x/"}))  # fmt: skip
    assert table.subscriptions() == {("n1", "default/t")}
    assert [r.rule.name for r in table.match_upload("n1", "default/t")] == ["up"]
    assert table.match_upload("n2", "default/t") == []
    assert table.match_upload("n1", "t") == []
    table.apply("rule", "delete", rule("up", "", "", {}, {}))
    assert table.subscriptions() == set()


def test_status_counts_survive_updates_and_keep_the_last_errors(table: rules.RuleTable) -> None:
    obj = rule("a", "rest", "bus", {"path": "a"}, {"topic": "t"})
    obj["status"] = {"successMessages": 3, "failMessages": 1, "errors": ["old"]}
    table.apply("rule", "insert", obj)
    r = table.rules["default", "a"]
    table.record(r)
    for i in range(7):
        table.record(r, error=f"e{i}")
    table.apply("rule", "update", rule("a", "rest", "bus", {"path": "a"}, {"topic": "t"}))
    status = table.rules["default", "a"].status.as_object()
    assert status["successMessages"] == 4
    assert status["failMessages"] == 8
    assert status["errors"] == ["e2", "e3", "e4", "e5", "e6"]
    unwritten = table.rules["default", "a"].unwritten.as_object()
    assert (unwritten["successMessages"], unwritten["failMessages"]) == (1, 7)


def test_what_is_counted_here_is_added_to_what_the_rule_holds_then_forgotten() -> None:
    """Several routers count for one Rule: each adds what it counted since its last
    write to the status the Rule holds, and forgets just that (more may have come)."""
    held = rules.Status(100, 7, ["theirs"])
    here = rules.Status()
    for error in ("", "", "e1", "e2", "e3", "e4", "e5"):
        here.count(error)
    sent = here.copy()
    here.count("")  # counted while the write was on its way
    here.count("e6")
    assert held.plus(sent).as_object() == {"successMessages": 102, "failMessages": 12,
                                           "errors": ["e1", "e2", "e3", "e4", "e5"]}  # fmt: skip
    here.minus(sent)
    assert here.as_object() == {"successMessages": 1, "failMessages": 1, "errors": ["e6"]}
    assert rules.Status(1, 1, ["x"]).plus(rules.Status()).errors == ["x"]
