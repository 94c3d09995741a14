"""framing against websockets' own frame reader and writer, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from modules.hub import framing

SIZES = [0, 1, 125, 126, 65535, 65536]


def serialized(frames: list[Frame], *, mask: bool) -> bytes:
    return b"".join(frame.serialize(mask=mask) for frame in frames)


def parsed(data: bytes, *, mask: bool) -> list[Frame]:
    """websockets' reading of `data`: every whole frame in it."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=mask, max_size=None)
        try:
            next(parser)
        except StopIteration as done:
            frames.append(done.value)
            continue
        raise AssertionError("an incomplete frame")
    return frames


@pytest.mark.parametrize("size", SIZES)
def test_unmasked_text_frames_are_the_bytes_websockets_writes(size: int) -> None:
    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False)
    assert framing.text_frames([payload], mask=False) == expected


def test_masked_text_frames_read_back_with_websockets_each_with_its_own_key() -> None:
    payloads = [b"x" * size for size in SIZES]
    data = framing.text_frames(payloads, mask=True)
    frames = parsed(data, mask=True)
    assert [(f.opcode, f.fin, f.data) for f in frames] == [(Opcode.TEXT, True, p) for p in payloads]
    keys, pos = [], 0
    for payload in payloads:
        head = framing.head_at(data, pos)
        assert head is not None and head.length == len(payload)
        keys.append(data[pos + head.size - len(payload) - 4 : pos + head.size - len(payload)])
        pos += head.size
    assert len(set(keys)) == len(keys)  # 32 random bits each: a repeat means a reused key


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_whole_messages_are_taken_up_to_the_first_frame_that_is_websockets(mask: bool) -> None:
    taken = [Frame(Opcode.TEXT, b"one"), Frame(Opcode.BINARY, b"\x00\xff" * 100)]
    rest = [
        Frame(Opcode.PING, b"p"),
        Frame(Opcode.TEXT, b"three"),
    ]
    data = serialized(taken + rest, mask=mask)
    into: list[bytes] = []
    pos = framing.take_messages(data, 0, masked=mask, limit=None, into=into)
    assert into == [b"one", b"\x00\xff" * 100]
    assert pos == len(serialized(taken, mask=mask))


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(Frame(Opcode.TEXT, b"frag", fin=False), id="a first fragment"),
        pytest.param(Frame(Opcode.CONT, b"ment"), id="a continuation"),
        pytest.param(Frame(Opcode.PING, b""), id="a ping"),
        pytest.param(Frame(Opcode.PONG, b""), id="a pong"),
        pytest.param(Frame(Opcode.CLOSE, b"\x03\xe8"), id="a close"),
        pytest.param(None, id="a reserved bit"),
    ],
)
def test_every_other_frame_is_left_whole_for_websockets(frame: Frame | None) -> None:
    if frame is None:  # websockets writes no reserved bits: set RSV1 by hand
        other = bytearray(Frame(Opcode.TEXT, b"x").serialize(mask=True))
        other[0] |= 0x40
    else:
        other = bytearray(frame.serialize(mask=True))
    data = Frame(Opcode.TEXT, b"before").serialize(mask=True) + bytes(other)
    into: list[bytes] = []
    pos = framing.take_messages(data, 0, masked=True, limit=None, into=into)
    assert into == [b"before"]
    head = framing.head_at(data, pos)
    assert head is not None and pos + head.size == len(data)


def test_a_frame_masked_as_the_peer_should_not_is_left_for_websockets() -> None:
    for mask in (True, False):
        data = serialized([Frame(Opcode.TEXT, b"x")], mask=not mask)
        assert framing.take_messages(data, 0, masked=mask, limit=None, into=[]) == 0


def test_the_size_limit_takes_a_payload_of_exactly_the_limit_and_leaves_a_larger_one() -> None:
    data = serialized([Frame(Opcode.TEXT, b"x" * 200), Frame(Opcode.TEXT, b"y" * 201)], mask=True)
    into: list[bytes] = []
    pos = framing.take_messages(data, 0, masked=True, limit=200, into=into)
    assert into == [b"x" * 200]
    head = framing.head_at(data, pos)
    assert head is not None and head.length == 201


@given(
    sizes=st.lists(st.sampled_from([0, 3, 125, 126, 300, 65536]), min_size=1, max_size=4),
    cut=st.floats(min_value=0, max_value=1),
    mask=st.booleans(),
)
def test_a_buffer_cut_anywhere_yields_the_whole_frames_before_the_cut(
    sizes: list[int], cut: float, mask: bool
) -> None:
    payloads = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    frames = [f.serialize(mask=mask) for f in (Frame(Opcode.TEXT, p) for p in payloads)]
    data = b"".join(frames)
    end = int(cut * len(data))
    into: list[bytes] = []
    pos = framing.take_messages(data[:end], 0, masked=mask, limit=None, into=into)
    whole, offset = 0, 0
    for frame in frames:
        if offset + len(frame) > end:
            break
        offset += len(frame)
        whole += 1
    assert into == payloads[:whole] and pos == offset
    head = framing.head_at(data[:end], pos)
    if pos < len(data):  # the frame at the cut: its size is known once its length is in
        length_bytes = 2 if sizes[whole] < 126 else 4 if sizes[whole] < 65536 else 10
        assert (head is not None) == (end - pos >= length_bytes)
