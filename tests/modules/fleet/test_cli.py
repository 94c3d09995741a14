"""`beehive fleet` as a user runs it: options, the JSON summary, and the control channel."""

from __future__ import annotations

import asyncio
import io
import json
import threading

import pytest

from modules import cli
from modules.fleet import Fleet, FleetOptions, control
from tests.modules.fleet.conftest import WAIT, Cloud

SUMMARY_KEYS = {
    "nodes", "enrolled", "nodes_created", "connected", "connects", "disconnects",
    "connect_failures", "received", "stored", "deleted", "duplicates", "acks",
    "acks_withheld", "status_reports", "malformed_sent", "store_errors", "cloud_errors",
    "drops", "errors", "elapsed_seconds", "messages_per_second", "held",
}  # fmt: skip


@pytest.mark.integration
def test_json_summary_has_every_counter_and_what_nodes_hold(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fleet", "--cloud", cloud.address, "--nodes", "2", "--plain", "--prefix", "js",
            "--kubeconfig", str(cloud.kubeconfig), "--duration", "1.5", "--json", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == SUMMARY_KEYS
    assert report["nodes"] == 2 and report["nodes_created"] == 2
    assert report["connects"] == 2 and report["errors"] == 0 and report["drops"] == 0
    assert report["held"] == {"node": 2}


def test_bad_options_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["fleet", "--cloud", "127.0.0.1:1", "--nodes", "0", "--plain"]
    assert cli.main(argv) == 2
    assert "nodes must be at least 1" in capsys.readouterr().err


def test_control_commands_answer_in_json_and_end_of_input_stops() -> None:
    options = FleetOptions(cloud="127.0.0.1:1", nodes=2, plain=True)
    source = io.StringIO("stats\ndrop 0.5\nbogus\n")
    sink = io.StringIO()
    done = threading.Event()

    async def main() -> None:
        fleet = Fleet(options)
        control.start(fleet, source=source, sink=sink)
        await asyncio.wait_for(fleet.stop.wait(), timeout=WAIT)  # set at end of input
        done.set()

    asyncio.run(main())
    assert done.is_set()
    replies = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert replies[0]["nodes"] == 2 and replies[1] == {"dropped": 0}
    assert "unknown command" in replies[2]["error"]
