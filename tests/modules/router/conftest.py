"""A real MQTT broker for the router tests: mosquitto on a free port; the tests that need
one are skipped where it is not installed (amqtt, the Python broker, pins an older
websockets than ours)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import free_port
from tests.kube_fixtures import edge_node, kube, kube_namespace  # noqa: F401


class Broker:
    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def start_broker(tmp_path: Path, port: int = 0) -> Broker:
    port = port or free_port()
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if exe is None:
        pytest.skip("no MQTT broker (install mosquitto)")
    conf = tmp_path / f"mosquitto-{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Broker(port, proc)
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise RuntimeError("the MQTT broker did not start")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path)
    yield b
    b.stop()
