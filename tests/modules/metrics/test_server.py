"""The metrics HTTP server: a client that leaves before its answer is no error."""

from __future__ import annotations

import logging
import socket
import struct
import threading

import pytest
from prometheus_client import CollectorRegistry

from modules.metrics.server import MetricsServer
from tests.fakes import eventually


def test_a_probe_that_left_before_its_answer_is_logged_quietly(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A scraper or kubelet probe past its timeout resets the connection; the answer's
    write fails, and that is a debug line, not a traceback on stderr."""
    asked, answer = threading.Event(), threading.Event()

    def ready() -> list[str]:
        asked.set()
        answer.wait(5)
        return []

    server = MetricsServer(address="127.0.0.1", port=0, registry=CollectorRegistry(),
                           health=lambda: [], ready=ready)  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="modules.metrics")
    port = server.start()
    try:
        probe = socket.create_connection(("127.0.0.1", port), timeout=5)
        probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: cloudcore\r\n\r\n")
        assert asked.wait(5)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        probe.close()  # a reset, as a client gives up
        answer.set()
        assert eventually(lambda: any("left before its answer" in r.getMessage()
                                      for r in caplog.records))  # fmt: skip
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
