"""The common websocket frames, read and written without websockets' general parser.

Nearly every frame between cloudhub and an edge is a whole text message in one frame:
a delivery one way, its ack the other. websockets' sans-I/O parser (a generator per
frame, a `Frame` object, a check per field) costs about 6 µs a frame and its writer
about 3 µs, on each side of every delivery. `wsconn` reads and writes these frames
here, and hands websockets every other frame (control frames, fragments, anything
over the size limit or with reserved bits set), whole, so that its parser always
starts at a frame boundary and answers and fails as it always does.

Plain functions over bytes (RFC 6455, section 5.2); no state, no I/O.
"""

from __future__ import annotations

import os
from collections.abc import MutableSequence, Sequence
from typing import NamedTuple

try:  # websockets' C version of the XOR, as websockets itself picks it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - built without its C extension
    from websockets.utils import apply_mask

_TEXT, _BINARY = 0x1, 0x2
_FIN = 0x80
_MASKED = 0x80


class Head(NamedTuple):
    """The header of the frame at some offset: its whole size and its payload's."""

    size: int  # header and payload, in bytes
    length: int  # payload bytes


def head_at(buf: bytes | bytearray, pos: int) -> Head | None:
    """The sizes of the frame starting at `buf[pos]`; None until its length is in."""
    if pos + 2 > len(buf):
        return None
    b1 = buf[pos + 1]
    length, header = b1 & 0x7F, 2
    if length == 126:
        if pos + 4 > len(buf):
            return None
        length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
    elif length == 127:
        if pos + 10 > len(buf):
            return None
        length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
    if b1 & _MASKED:
        header += 4
    return Head(header + length, length)


def take_messages(
    buf: bytes | bytearray,
    pos: int,
    *,
    masked: bool,
    limit: int | None,
    into: MutableSequence[bytes],
) -> int:
    """Append to `into` the payloads of the whole single-frame messages at `buf[pos:]`
    (text or binary, FIN set, no reserved bits, masked exactly when `masked`, at most
    `limit` bytes), in order; returns the offset of the first frame that is not one,
    or is not complete yet (``len(buf)`` when all were)."""
    end_of_buf = len(buf)
    while pos + 2 <= end_of_buf:
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 != _FIN | _TEXT and b0 != _FIN | _BINARY:
            break  # a fragment, a control frame or reserved bits: websockets'
        if bool(b1 & _MASKED) is not masked:
            break  # websockets refuses it
        # The length is read here as `head_at` reads it, without its call and named
        # tuple: this runs for every frame either side receives.
        length, start = b1 & 0x7F, pos + 2
        if length == 126:
            if pos + 4 > end_of_buf:
                break
            length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
        elif length == 127:
            if pos + 10 > end_of_buf:
                break
            length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
        if limit is not None and length > limit:
            break  # websockets fails the connection (1009)
        if masked:
            start += 4
        end = start + length
        if end > end_of_buf:
            break
        if masked:
            into.append(apply_mask(buf[start:end], buf[start - 4 : start]))
        else:
            into.append(bytes(buf[start:end]))
        pos = end
    return pos


def text_frames(payloads: Sequence[bytes], *, mask: bool) -> bytes:
    """Whole text frames for `payloads`, one after the other; masked (a client's) with
    a fresh random key each when `mask`."""
    keys = os.urandom(4 * len(payloads)) if mask else b""
    out: list[bytes] = []
    for i, payload in enumerate(payloads):
        length = len(payload)
        second = _MASKED if mask else 0
        if length < 126:
            out.append(bytes((_FIN | _TEXT, second | length)))
        elif length < 65536:
            out.append(bytes((_FIN | _TEXT, second | 126)) + length.to_bytes(2, "big"))
        else:
            out.append(bytes((_FIN | _TEXT, second | 127)) + length.to_bytes(8, "big"))
        if mask:
            key = keys[4 * i : 4 * i + 4]
            out.append(key)
            out.append(apply_mask(payload, key))
        else:
            out.append(payload)
    return b"".join(out)
