"""The admin endpoint: a hive answers over a private unix socket (or loopback tcp)."""

from __future__ import annotations

import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beehive import AdminError, Hive
from beehive.admin import AdminClient, AdminServer, message_json
from beehive.errors import UnknownModuleError
from tests.fakes import Probe, RecordingModule, RecordingSettings, msg

MakeHive = Callable[..., Hive]


@pytest.fixture
def served(
    make_hive: MakeHive, probe: Probe, tmp_path: Path
) -> Iterator[tuple[Hive, AdminClient, Path]]:
    hive = make_hive()
    probe.gate.clear()
    hive.add(
        "held", RecordingModule, settings=RecordingSettings(gated=True), services={"probe": probe}
    )
    hive.add(
        "echo", RecordingModule, group="g", settings=RecordingSettings(), services={"probe": probe}
    )
    hive.start()
    path = tmp_path / "admin" / "hive.sock"
    server = AdminServer(hive, f"unix://{path}")
    server.start()
    yield hive, AdminClient(f"unix://{path}"), path
    server.stop()
    probe.gate.set()


def test_the_socket_is_owner_only(served: tuple[Hive, AdminClient, Path]) -> None:
    _, _, path = served
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_modules_lists_each_module_with_its_mailbox(served: tuple[Hive, AdminClient, Path]) -> None:
    _, client, _ = served
    modules = client.call("modules")
    assert [m["name"] for m in modules] == ["held", "echo"]
    assert modules[0]["mailbox"]["capacity"] == 1024 and modules[0]["state"] == "running"


def test_peek_shows_queued_messages_without_consuming_them(
    served: tuple[Hive, AdminClient, Path], probe: Probe
) -> None:
    hive, client, _ = served
    first, second = msg(), msg(content={"n": 2})
    hive.send("held", first)
    assert probe.wait_entered("held", first)
    hive.send("held", second)
    [queued] = client.call("peek", module="held", limit=5)
    assert queued["message"] == message_json(second) and queued["age"] >= 0
    assert hive.module("held").mailbox.depth == 1


def test_send_puts_a_message_in_and_sync_returns_the_reply(
    served: tuple[Hive, AdminClient, Path], probe: Probe
) -> None:
    _, client, _ = served
    result = client.call("send", module="echo", message=message_json(msg(content="x")))
    assert probe.wait_for(lambda: probe.count("echo") == 1)
    assert probe.messages("echo")[0].msg_id == result["sent"]
    reply = client.call("send", module="echo", message=message_json(msg(content="y")), sync=True)
    assert reply["content"] == "y" and reply["header"]["parent_msg_id"]


def test_deadletters_shows_reason_module_and_message(
    served: tuple[Hive, AdminClient, Path],
) -> None:
    hive, client, _ = served
    lost = msg()
    with pytest.raises(Exception, match="unknown module"):
        hive.send("ghost", lost)
    result = client.call("deadletters")
    assert result["total"] == 1
    [letter] = result["letters"]
    assert (letter["module"], letter["reason"]) == ("ghost", "unknown module")
    assert letter["message"]["header"]["msg_id"] == lost.msg_id


@pytest.mark.parametrize(
    ("cmd", "args", "error"),
    [
        pytest.param("nope", {}, "unknown command 'nope' (known: ", id="unknown command"),
        pytest.param("peek", {"module": "ghost"}, "unknown module 'ghost'", id="unknown module"),
        pytest.param(
            "peek", {"bogus": 1}, "unexpected keyword argument 'bogus'", id="wrong arguments"
        ),
        pytest.param(
            "send",
            {"module": "echo", "message": {"header": {}}},
            "header.msg_id: expected a non-empty string",
            id="malformed message",
        ),
    ],
)
def test_bad_requests_get_a_clear_error(
    served: tuple[Hive, AdminClient, Path], cmd: str, args: dict[str, object], error: str
) -> None:
    _, client, _ = served
    with pytest.raises(AdminError, match="admin endpoint unix://") as info:
        client.call(cmd, **args)
    assert error in str(info.value)


def test_commands_registered_on_the_hive_are_served(served: tuple[Hive, AdminClient, Path]) -> None:
    hive, client, _ = served
    hive.register_command("nodes", lambda verbose=False: {"nodes": [], "verbose": verbose})
    assert client.call("nodes", verbose=True) == {"nodes": [], "verbose": True}


def test_nothing_running_is_reported_plainly(tmp_path: Path) -> None:
    client = AdminClient(f"unix://{tmp_path}/none.sock")
    with pytest.raises(
        AdminError, match="nothing is running here \\(start it with `beehive run CONFIG`\\)"
    ):
        client.call("modules")


def test_a_stale_socket_file_is_replaced_but_a_live_one_is_not(
    make_hive: MakeHive, tmp_path: Path
) -> None:
    hive = make_hive()
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves the file behind with nobody listening
    first = AdminServer(hive, f"unix://{path}")
    first.start()
    try:
        with pytest.raises(AdminError, match="another process is already serving here"):
            AdminServer(hive, f"unix://{path}").start()
        assert AdminClient(f"unix://{path}").call("ping")["pid"] > 0
    finally:
        first.stop()
    assert not path.exists()


def test_a_loopback_tcp_address_works_too(make_hive: MakeHive) -> None:
    hive = make_hive()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = AdminServer(hive, f"tcp://127.0.0.1:{port}")
    server.start()
    try:
        assert AdminClient(f"tcp://127.0.0.1:{port}").call("groups") == {}
    finally:
        server.stop()


def _hide(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "content": "<hidden>"}


class _Hiding(RecordingModule):
    message_redactor = staticmethod(_hide)


def test_every_message_view_goes_through_the_applications_redactor(
    make_hive: MakeHive, probe: Probe, tmp_path: Path
) -> None:
    hive = make_hive()
    probe.gate.clear()
    hive.add("held", _Hiding, settings=RecordingSettings(gated=True), services={"probe": probe})
    hive.start()
    path = tmp_path / "admin.sock"
    server = AdminServer(hive, f"unix://{path}")
    server.start()
    try:
        first, second = msg(content={"secret": "s3cr3t"}), msg(content={"secret": "s3cr3t"})
        hive.send("held", first)
        assert probe.wait_entered("held", first)
        hive.send("held", second)
        with pytest.raises(UnknownModuleError):
            hive.send("nobody", msg(content={"secret": "s3cr3t"}))
        client = AdminClient(f"unix://{path}")
        shown = [client.call("peek", module="held"), client.call("deadletters")]
        assert "s3cr3t" not in repr(shown) and "<hidden>" in repr(shown)
    finally:
        server.stop()
        probe.gate.set()
