"""What the code relies on in its libraries beyond their documented API.

One test per reliance, each docstring naming the code that depends on it, so that an
upgrade that changes one fails here with a message saying what broke and where,
instead of somewhere deep in an integration test (or not at all).
"""

from __future__ import annotations

import asyncio
import dataclasses
import select
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

import pykka
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from beehive.mailbox import Mailbox
from beehive.message import Message
from modules.hub import eventloop, wsconn
from tests.fakes import WAIT


def _fail(what: str, where: str) -> str:
    return f"{what}: {where} relies on it; adapt it to the new version"


# pykka: beehive/_cell.py and beehive/mailbox.py


@dataclasses.dataclass
class _Seen:
    """What an `_InboxActor` received, shared with the test (the actor is on its thread)."""

    got: list[Any] = dataclasses.field(default_factory=list)
    cond: threading.Condition = dataclasses.field(default_factory=threading.Condition)
    gate: threading.Event | None = None  # on_receive waits for it, when given

    def record(self, message: Any) -> None:
        with self.cond:
            self.got.append(message)
            self.cond.notify_all()

    def wait_for(self, count: int) -> bool:
        """Wait (bounded) until `count` messages have been received."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.got) >= count, WAIT)


class _InboxActor(pykka.ThreadingActor):
    """An actor with an inbox of its own, as beehive's `_ModuleActor` has: the attribute
    is set before pykka's __init__, which calls `_create_actor_inbox` on the instance."""

    use_daemon_thread = True

    def __init__(self, inbox: Mailbox, seen: _Seen) -> None:
        self._inbox = inbox
        self._seen = seen
        super().__init__()

    def _create_actor_inbox(self) -> Mailbox:  # type: ignore[override]
        return self._inbox

    def on_receive(self, message: Any) -> Any:
        self._seen.record(message)
        if self._seen.gate is not None:
            self._seen.gate.wait(WAIT)
        return message


class _RecordingMailbox(Mailbox):
    """A beehive mailbox that keeps what pykka puts in through `put`."""

    def __init__(self) -> None:
        super().__init__("pin", capacity=8)
        self.put_envelopes: list[Any] = []

    def put(self, envelope: Any, /) -> None:
        self.put_envelopes.append(envelope)
        super().put(envelope)


def test_pykka_takes_the_actor_inbox_from_create_actor_inbox_on_the_instance() -> None:
    """beehive/_cell.py `_ModuleActor._create_actor_inbox` hands pykka the cell's bounded
    Mailbox: pykka's Actor.__init__ must call this private hook on the instance (after the
    subclass has set its attributes) and use what it returns as the actor's inbox."""
    assert hasattr(pykka.ThreadingActor, "_create_actor_inbox"), _fail(
        "pykka.ThreadingActor._create_actor_inbox is gone", "beehive/_cell.py _ModuleActor"
    )
    inbox = Mailbox("pin", capacity=4)
    actor = _InboxActor(inbox, _Seen())  # built, not started
    actor_inbox: object = actor.actor_inbox
    assert actor_inbox is inbox, _fail(
        "pykka no longer uses _create_actor_inbox's result as actor_inbox",
        "beehive/_cell.py _ModuleActor",
    )
    ref_inbox: object = actor.actor_ref.actor_inbox
    assert ref_inbox is inbox, _fail(
        "ActorRef no longer shares the actor's inbox", "beehive/_cell.py _ModuleActor"
    )


def test_pykka_puts_envelopes_with_message_and_reply_to_and_reads_only_those() -> None:
    """beehive/mailbox.py: `Mailbox.put` takes pykka's envelopes (tell, ask, stop) as
    objects with `message` and `reply_to` (its `Envelope` protocol), and `Mailbox.get`
    hands pykka's actor loop beehive's own `_Queued` for data messages, which has only
    those two attributes: the loop must read nothing else from an envelope."""
    inbox, seen = _RecordingMailbox(), _Seen()
    actor = _InboxActor.start(inbox, seen)
    try:
        actor.tell("told")
        assert actor.ask("asked", timeout=WAIT) == "asked"
        data = Message.new(operation="update", resource="pin")
        inbox.offer(data)  # as Hive.send: a data message, no envelope of pykka's
        assert seen.wait_for(3), _fail(
            f"pykka's loop did not hand on_receive a beehive data message: {seen.got!r}",
            "beehive/mailbox.py _Queued",
        )
    finally:
        actor.stop(timeout=WAIT)
    told, asked, stop = inbox.put_envelopes
    for envelope in (told, asked, stop):
        assert hasattr(envelope, "message") and hasattr(envelope, "reply_to"), _fail(
            f"pykka's envelope {envelope!r} lacks message or reply_to",
            "beehive/mailbox.py Envelope and _Queued",
        )
    assert (told.message, told.reply_to) == ("told", None), _fail(
        "tell no longer puts Envelope(message, reply_to=None)", "beehive/mailbox.py"
    )
    assert asked.message == "asked" and isinstance(asked.reply_to, pykka.Future), _fail(
        "ask no longer puts an envelope whose reply_to is a Future", "beehive/mailbox.py"
    )
    assert stop.reply_to is not None, _fail(
        "stop no longer comes in through put with a reply_to", "beehive/mailbox.py control lane"
    )
    assert seen.got == ["told", "asked", data], _fail(
        f"pykka's loop handed on_receive {seen.got!r}", "beehive/mailbox.py _Queued"
    )


def test_pykka_stops_an_actor_with_data_still_queued_reading_only_reply_to() -> None:
    """beehive/_cell.py and beehive/mailbox.py: a stop goes ahead of queued data (the
    control lane), and pykka's teardown then drains the inbox reading each envelope's
    `reply_to`, which beehive's `_Queued` data messages have (None)."""
    inbox, seen = Mailbox("pin", capacity=8), _Seen(gate=threading.Event())
    ref = _InboxActor.start(inbox, seen)
    messages = [Message.new(operation="update", resource=f"pin/{i}") for i in range(3)]
    for message in messages:
        inbox.offer(message)
    assert seen.wait_for(1)
    stopped = ref.stop(block=False)
    assert seen.gate is not None
    seen.gate.set()
    try:
        stopped.get(timeout=WAIT)
    except Exception as exc:  # any failure here is the broken dependency
        pytest.fail(_fail(f"pykka's stop failed with data queued: {exc!r}", "beehive/_cell.py"))
    assert seen.got == messages[:1], _fail(
        "data queued behind a stop was handled", "beehive/mailbox.py control lane"
    )
    assert inbox.empty(), _fail("pykka's teardown no longer drains the inbox", "beehive/_cell.py")


# websockets: modules/hub/wsconn.py and modules/hub/framing.py


def _client_frame(opcode: Opcode, payload: bytes, *, fin: bool) -> bytes:
    """A frame as a client writes it (masked)."""
    return Frame(opcode, payload, fin=fin).serialize(mask=True)


class _NoHandler:
    """Stands in for a connection's owner: `_limit` asks it nothing."""


def _limit(protocol: ServerProtocol) -> int | None:
    conn = wsconn.Connection(cast(wsconn.Handler, _NoHandler()), protocol, close_timeout=1.0)
    return conn._limit()


def test_websockets_keeps_its_size_limits_in_max_message_size_and_max_fragment_size() -> None:
    """modules/hub/wsconn.py `Connection._limit` reads websockets' limits from the
    protocol's `max_message_size` and `max_fragment_size` (set from `max_size`, an int or
    a pair), to refuse in its fast frame path what websockets would."""
    for max_size, expected in (
        (1024, (1024, None)),
        ((1024, 256), (1024, 256)),
        (None, (None, None)),
    ):
        protocol = ServerProtocol(max_size=max_size)
        found = (getattr(protocol, "max_message_size", "missing"),
                 getattr(protocol, "max_fragment_size", "missing"))  # fmt: skip
        assert found == expected, _fail(
            f"ServerProtocol(max_size={max_size!r}) keeps its limits as {found!r}",
            "modules/hub/wsconn.py Connection._limit",
        )


def _current_size(protocol: ServerProtocol) -> int | None:
    return protocol.current_size  # read afresh each time (mypy would narrow the attribute)


def _sending_fragments(protocol: ClientProtocol) -> bool:
    return protocol.expect_continuation_frame


def test_websockets_counts_a_fragmented_message_in_current_size() -> None:
    """modules/hub/wsconn.py `Connection._read_frames` takes frames itself only while
    websockets' `current_size` is None (no fragmented message under way), and `_limit`
    subtracts it from the message limit."""
    protocol = ServerProtocol(state=State.OPEN, max_size=1024)
    assert _current_size(protocol) is None, _fail(
        "current_size is not None before any fragment", "modules/hub/wsconn.py _read_frames"
    )
    protocol.receive_data(_client_frame(Opcode.TEXT, b"12345", fin=False))
    assert _current_size(protocol) == 5, _fail(
        f"current_size is {_current_size(protocol)!r} after a first fragment of 5 bytes",
        "modules/hub/wsconn.py _read_frames and _limit",
    )
    protocol.receive_data(_client_frame(Opcode.CONT, b"678", fin=False))
    assert _current_size(protocol) == 8, _fail(
        f"current_size is {_current_size(protocol)!r} after fragments of 8 bytes",
        "modules/hub/wsconn.py _limit",
    )
    protocol.receive_data(_client_frame(Opcode.CONT, b"9", fin=True))
    assert _current_size(protocol) is None, _fail(
        "current_size is not None again after the last fragment",
        "modules/hub/wsconn.py _read_frames",
    )


@pytest.mark.parametrize(
    ("max_size", "first_fragment"),
    [
        pytest.param(64, b"", id="a message limit"),
        pytest.param(64, b"x" * 40, id="what is left of it during a fragmented message"),
        pytest.param((64, 16), b"", id="a fragment limit"),
        pytest.param((20, 16), b"x" * 10, id="the smaller of what is left and the fragment limit"),
        pytest.param((None, 16), b"x" * 10, id="a fragment limit only"),
    ],
)
def test_websockets_accepts_a_frame_of_exactly_the_limit_wsconn_computes_and_no_more(
    max_size: int | tuple[int | None, int], first_fragment: bytes
) -> None:
    """modules/hub/wsconn.py `Connection._limit` mirrors websockets' own size rule
    (Protocol.parse); frames within it are read by framing.take_messages, larger ones
    handed to websockets to fail with 1009. The two must agree."""

    protocol = ServerProtocol(state=State.OPEN, max_size=max_size)
    if first_fragment:
        protocol.receive_data(_client_frame(Opcode.TEXT, first_fragment, fin=False))
    limit = _limit(protocol)
    assert limit is not None
    within = ServerProtocol(state=State.OPEN, max_size=max_size)
    over = ServerProtocol(state=State.OPEN, max_size=max_size)
    opcode = Opcode.CONT if first_fragment else Opcode.TEXT
    for candidate, size in ((within, limit), (over, limit + 1)):
        if first_fragment:
            candidate.receive_data(_client_frame(Opcode.TEXT, first_fragment, fin=False))
        candidate.receive_data(_client_frame(opcode, b"x" * size, fin=True))
    assert within.state is State.OPEN and within.close_sent is None, _fail(
        f"websockets refused a frame of {limit} bytes, the limit wsconn computed",
        "modules/hub/wsconn.py Connection._limit",
    )
    assert over.close_sent is not None and over.close_sent.code == 1009, _fail(
        f"websockets took a frame of {limit + 1} bytes, over the limit wsconn computed",
        "modules/hub/wsconn.py Connection._limit",
    )


def test_websockets_tracks_a_fragmented_send_and_extensions_in_plain_attributes() -> None:
    """modules/hub/wsconn.py `Connection.write_frames` writes frames itself (framing.
    text_frames) only when websockets' `expect_continuation_frame` is False (no message
    of ours half sent) and `extensions` is empty (nothing such as compression to apply)."""
    protocol = ClientProtocol(parse_uri("ws://localhost/"), state=State.OPEN)
    assert protocol.extensions == [], _fail(
        f"extensions is {getattr(protocol, 'extensions', 'missing')!r} with none negotiated",
        "modules/hub/wsconn.py write_frames",
    )
    assert _sending_fragments(protocol) is False, _fail(
        "expect_continuation_frame is not False before any send", "modules/hub/wsconn.py"
    )
    protocol.send_text(b"half", fin=False)
    assert _sending_fragments(protocol) is True, _fail(
        "expect_continuation_frame is not True during a fragmented send",
        "modules/hub/wsconn.py write_frames",
    )
    protocol.send_continuation(b"rest", fin=True)
    assert _sending_fragments(protocol) is False, _fail(
        "expect_continuation_frame is not False after the last fragment",
        "modules/hub/wsconn.py write_frames",
    )


def test_websockets_apply_mask_xors_with_the_key_repeated() -> None:
    """modules/hub/framing.py imports `apply_mask` from websockets.speedups (websockets'
    C extension), else from websockets.utils, to mask and unmask frames."""
    from websockets.utils import apply_mask as slow

    fast: Callable[[bytes, bytes], bytes] | None
    try:
        from websockets.speedups import apply_mask as fast
    except ImportError:  # pragma: no cover - websockets built without its C extension
        fast = None

    data, key = bytes(range(11)), b"\x01\x02\x04\x08"
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    for name, apply in (("speedups", fast), ("utils", slow)):
        if apply is None:
            continue
        assert apply(data, key) == expected, _fail(
            f"websockets.{name}.apply_mask is no longer XOR with the key", "modules/hub/framing.py"
        )


# selectors: modules/hub/eventloop.py

_EPOLL_CALLS: list[str] = []


class _SpyEpoll(eventloop._CappedEpoll):
    """The capped epoll, noting that it was built and which of its methods ran."""

    def __init__(self) -> None:
        super().__init__()
        _EPOLL_CALLS.append("built")
        for name in ("register", "modify", "unregister", "close"):
            setattr(self, name, self._noting(name, getattr(self, name)))

    @staticmethod
    def _noting(name: str, method: Any) -> Any:
        def call(*args: Any) -> Any:
            _EPOLL_CALLS.append(name)
            return method(*args)

        return call

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        _EPOLL_CALLS.append("poll")
        return super().poll(timeout, maxevents)


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")
def test_epoll_selector_builds_its_epoll_from_selector_cls_and_uses_only_its_methods() -> None:
    """modules/hub/eventloop.py `PacedSelector` sets `selectors.EpollSelector`'s private
    `_selector_cls` to `_CappedEpoll`, which has only register, modify, unregister, poll,
    fileno and close: the selector must build its epoll object from that class and call
    nothing else on it."""
    assert getattr(selectors.EpollSelector, "_selector_cls", None) is select.epoll, _fail(
        "selectors.EpollSelector._selector_cls is no longer select.epoll",
        "modules/hub/eventloop.py PacedSelector",
    )

    class Spied(eventloop.PacedSelector):
        _selector_cls = _SpyEpoll

    _EPOLL_CALLS.clear()
    reader, writer = socket.socketpair()
    try:
        selector = Spied()
        selector.register(reader, selectors.EVENT_READ)
        selector.modify(reader, selectors.EVENT_READ | selectors.EVENT_WRITE)
        ready = selector.select(0)
        selector.unregister(reader)
        selector.close()
    except AttributeError as exc:
        pytest.fail(_fail(f"EpollSelector used what _CappedEpoll lacks: {exc}",
                          "modules/hub/eventloop.py _CappedEpoll"))  # fmt: skip
    finally:
        reader.close()
        writer.close()
    assert [key.fileobj for key, _ in ready] == [reader]
    assert _EPOLL_CALLS == ["built", "register", "modify", "poll", "unregister", "close"], _fail(
        f"EpollSelector's calls on its epoll object were {_EPOLL_CALLS}",
        "modules/hub/eventloop.py PacedSelector",
    )


# asyncio: modules/cloudhub/transport.py


class _OnceRefusingListener(socket.socket):
    """A listening socket whose first accept raises `error`, as `_GatedSocket.accept`
    does to end an accept round, and that notes the loop iterations in between."""

    error: type[OSError] = BlockingIOError
    loop: asyncio.AbstractEventLoop
    calls: list[str]

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls.append("accept")
        if self.calls.count("accept") == 1:
            self.loop.call_soon(self.calls.append, "next iteration")
            raise self.error
        return super().accept()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(BlockingIOError, id="BlockingIOError: the round's limit"),
        pytest.param(ConnectionAbortedError, id="ConnectionAbortedError: refused by the gate"),
    ],
)
def test_asyncio_ends_an_accept_round_quietly_on_blocking_io_error(error: type[OSError]) -> None:
    """modules/cloudhub/transport.py `_GatedSocket.accept` raises BlockingIOError after
    `_ACCEPTS_PER_ROUND` accepts, and ConnectionAbortedError for a connection the
    handshake gate refused, to end asyncio's accept loop for this iteration: asyncio
    must call the listener's own `accept`, stop calling it for the iteration on these
    errors without reporting anything, and call it again on the next one."""
    reported: list[dict[str, Any]] = []

    async def serve() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        plain = socket.create_server(("127.0.0.1", 0))
        listener = _OnceRefusingListener(plain.family, plain.type, plain.proto,
                                         fileno=plain.detach())  # fmt: skip
        listener.error, listener.loop, listener.calls = error, loop, []
        accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

        class Accepted(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(transport)

        server = await loop.create_server(Accepted, sock=listener)
        try:
            _reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            try:
                (await asyncio.wait_for(accepted, WAIT)).close()
            except TimeoutError:
                pytest.fail(_fail(f"asyncio accepted nothing after {error.__name__}",
                                  "modules/cloudhub/transport.py _GatedSocket"))  # fmt: skip
            finally:
                writer.close()
                await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        return listener.calls

    with asyncio.Runner(loop_factory=eventloop.new_event_loop) as runner:
        calls = runner.run(serve())
    assert calls[:3] == ["accept", "next iteration", "accept"], _fail(
        f"after {error.__name__} asyncio went on as {calls}",
        "modules/cloudhub/transport.py _GatedSocket.accept",
    )
    assert reported == [], _fail(
        f"asyncio reported {error.__name__} as an error: {reported}",
        "modules/cloudhub/transport.py _GatedSocket.accept",
    )
