"""The join flow end to end (token, CA fetch and hash check, CSR, certificate, mutual TLS,
sync), and each way it is refused, with the error the user sees."""

from __future__ import annotations

import contextlib
import datetime
import platform
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modules.certs import ca as ca_mod
from modules.certs import token
from modules.hub import errors
from tests.fakes import eventually
from tests.modules.cloudhub.harness import node_row, pod, start_edge, stored
from tests.modules.cloudhub.tls_harness import (
    connect,
    edge_tls,
    expired_token,
    node_pair,
    other_ca_token,
    start_secure_cloud,
)

pytestmark = pytest.mark.integration


def foreign_token(cloud: Any) -> str:
    """This cloud's CA hash, but a JWT signed by another CA's key."""
    other = ca_mod.generate_ca(token.utc_now())
    signed = token.new_token(other, now=token.utc_now(), refresh=datetime.timedelta(hours=1))
    return token.ca_hash(cloud.ca().cert_der) + signed[64:]


def last_error(edge: Any) -> str:
    state = edge.commands.get("edgehub.state")
    return str(state()["last_error"]) if state else ""


def test_an_edge_joins_with_a_token_and_syncs_over_mutual_tls(
    make_hive, probe, world, kube, tmp_path
):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    world.put("edge-t", pod("web", "uid-web", rv=7))
    certs = tmp_path / "certs"
    edge = start_edge(make_hive, cloud.port, "edge-t", tmp_path / "t.db", **edge_tls(cloud, certs))
    assert eventually(lambda: stored(edge) == {"web": 7})
    assert node_row(cloud.hive, "edge-t")["connected"]
    assert cloud.hive.commands["certserver"]()["certificates_issued"] == 1
    for name in ("ca.crt", "node.crt", "node.key"):
        assert stat.S_IMODE((certs / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700


def test_an_edge_with_its_certificate_needs_no_token_to_reconnect(
    make_hive, probe, world, kube, tmp_path
):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    certs = tmp_path / "certs"
    first = start_edge(make_hive, cloud.port, "edge-r", tmp_path / "r.db", **edge_tls(cloud, certs))
    assert eventually(lambda: node_row(cloud.hive, "edge-r").get("connected", False))
    first.stop()
    world.put("edge-r", pod("db", "uid-db", rv=9))
    again = start_edge(make_hive, cloud.port, "edge-r", tmp_path / "r.db",
                       **edge_tls(cloud, certs, token=""))  # fmt: skip
    assert eventually(lambda: stored(again) == {"db": 9})
    assert cloud.hive.commands["certserver"]()["certificates_issued"] == 1


@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        pytest.param(
            lambda cloud: foreign_token(cloud),
            "HTTP 401: unauthorized: present a valid join token",
            id="a token signed by another cloud is refused by the certificate server",
        ),
        pytest.param(expired_token, "expired", id="an expired token is refused"),
        pytest.param(
            other_ca_token, "does not match the CA", id="a CA that is not the token's is refused"
        ),
    ],
)
def test_enrolment_is_refused_with_the_reason(
    make_hive, probe, world, kube, tmp_path, make_token, expected
):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    certs = tmp_path / "certs"
    settings = edge_tls(cloud, certs, token=make_token(cloud), reconnect_initial=5,
                        reconnect_max=5)  # fmt: skip
    edge = start_edge(make_hive, cloud.port, "edge-x", tmp_path / "x.db", **settings)
    assert eventually(lambda: expected in last_error(edge)), last_error(edge)
    assert "certificate enrolment failed" in last_error(edge)
    assert not (certs / "node.crt").exists()
    assert not node_row(cloud.hive, "edge-x")


def test_a_certificate_from_another_ca_is_refused_in_the_tls_handshake(
    make_hive, probe, world, kube
):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    stranger = node_pair(ca_mod.generate_ca(token.utc_now()), "edge-s")
    with pytest.raises(errors.HubConnectionError) as refused:
        connect(cloud, stranger, "edge-s").recv(2)
    assert "refused this node's certificate" in str(refused.value)
    assert not node_row(cloud.hive, "edge-s")


def test_a_certificate_for_one_node_cannot_connect_as_another(make_hive, probe, world, kube):
    cloud = start_secure_cloud(make_hive, probe, world, kube)
    pair_a = node_pair(cloud.ca(), "edge-a")
    with pytest.raises(errors.HubConnectionError) as refused:
        connect(cloud, pair_a, "edge-b")
    text = str(refused.value)
    assert "HTTP 403" in text and "for node 'edge-a'" in text and "'edge-b'" in text
    assert not node_row(cloud.hive, "edge-b")
    conn = connect(cloud, pair_a, "edge-a")  # the same certificate as itself is fine
    try:
        assert eventually(lambda: node_row(cloud.hive, "edge-a").get("connected", False))
    finally:
        conn.close()


def test_a_burst_over_the_pending_limit_waits_in_line_and_every_edge_connects(
    make_hive, probe, world, kube
):
    cloud = start_secure_cloud(make_hive, probe, world, kube, max_pending_handshakes=2,
                               max_queued_handshakes=100)  # fmt: skip
    nodes = [f"edge-q{i}" for i in range(24)]
    pairs = {node: node_pair(cloud.ca(), node) for node in nodes}
    with ThreadPoolExecutor(len(nodes)) as pool:  # all at once, as after an outage
        conns = list(pool.map(lambda node: connect(cloud, pairs[node], node, timeout=10), nodes))
    try:
        assert eventually(lambda: all(node_row(cloud.hive, n).get("connected") for n in nodes))
        metrics = cloud.hive.commands["cloudhub.metrics"]()
        assert metrics["handshakes"]["refused"]["pending_limit"] == 0
        assert metrics["handshakes"]["accepted"] >= len(nodes)
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_heap_is_given_back_once_a_wave_of_connections_settled(make_hive, probe, world, kube):
    cloud = start_secure_cloud(make_hive, probe, world, kube, release_heap_after=3)
    nodes = [f"edge-w{i}" for i in range(3)]
    conns = []
    try:
        for node in nodes[:2]:
            conns.append(connect(cloud, node_pair(cloud.ca(), node), node))

        def releases() -> int:
            return int(cloud.hive.commands["cloudhub.metrics"]()["heap_releases"])

        assert eventually(lambda: all(node_row(cloud.hive, n).get("connected") for n in nodes[:2]))
        assert releases() == 0  # two connections are not a wave
        conns.append(connect(cloud, node_pair(cloud.ca(), nodes[2]), nodes[2]))
        assert eventually(lambda: releases() == 1, timeout=10)  # 2 s after the third
    finally:
        for conn in conns:
            conn.close()


def test_past_the_line_connections_are_refused_and_counted(make_hive, probe, world, kube):
    cloud = start_secure_cloud(make_hive, probe, world, kube, max_pending_handshakes=1,
                               max_queued_handshakes=1, handshake_timeout=5)  # fmt: skip
    held = [socket.create_connection(("127.0.0.1", cloud.port), timeout=5) for _ in range(3)]
    try:  # one holds the slot, one waits in line, the third is closed at once
        with contextlib.suppress(ConnectionResetError):
            assert held[2].recv(10) == b""
        counts = cloud.hive.commands["cloudhub.metrics"]()["handshakes"]
        assert counts["refused"]["pending_limit"] == 1
    finally:
        for sock in held:
            sock.close()
