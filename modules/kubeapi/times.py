"""Timestamps as the API server decodes and encodes them: metav1.Time and MicroTime.

A Time is parsed with Go's `time.Parse(time.RFC3339, s)` and written back in UTC to the
second; a MicroTime with `time.Parse("2006-01-02T15:04:05.000000Z07:00", s)`, which
wants exactly six fractional digits, and written back in UTC with six. `canonical`
does both and raises `TimeError` with the text Go's parser gives, so that a client
sending `2024-05-01T10:00:00+00:00` as an event time is refused here as there.
"""

from __future__ import annotations

import calendar
import datetime
import json

TIME_LAYOUT = "2006-01-02T15:04:05Z07:00"
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


class TimeError(ValueError):
    """A timestamp Go's time.Parse refuses; str() is Go's *time.ParseError text."""


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _digits(text: str) -> bool:
    """Only ASCII digits, and at least one (str.isdigit takes other scripts' too)."""
    return bool(text) and all("0" <= c <= "9" for c in text)


class _Parser:
    """Go's time.parse for the two RFC 3339 layouts, element by element."""

    def __init__(self, value: str, layout: str) -> None:
        self.text, self.layout, self.rest = value, layout, value

    def fail(self, layout_elem: str, value_elem: str) -> TimeError:
        return TimeError(
            f"parsing time {_quote(self.text)} as {_quote(self.layout)}: cannot parse "
            f"{_quote(value_elem)} as {_quote(layout_elem)}"
        )

    def out_of_range(self, what: str) -> TimeError:
        return TimeError(f"parsing time {_quote(self.text)}: {what} out of range")

    def literal(self, prefix: str) -> None:
        if not self.rest.startswith(prefix):
            raise self.fail(prefix, self.rest)
        self.rest = self.rest[len(prefix) :]

    def number(self, elem: str, *, fixed: bool) -> int:
        """getnum: two digits, or when not `fixed` one or two."""
        hold = self.rest
        if not _digits(hold[:1]) or (fixed and not _digits(hold[1:2])):
            raise self.fail(elem, hold)
        width = 2 if _digits(hold[1:2]) else 1
        self.rest = hold[width:]
        return int(hold[:width])

    def year(self) -> int:
        if len(self.rest) < 4 or not _digits(self.rest[:4]):
            raise self.fail("2006", self.rest)
        year, self.rest = int(self.rest[:4]), self.rest[4:]
        return year

    def fraction(self, digits: int | None) -> int:
        """Microseconds: `digits` exactly (the layout's .000000), or any (none in it)."""
        hold = self.rest
        if digits is not None:
            width = digits + 1
            if len(hold) < width or hold[0] not in ".," or not _digits(hold[1:width]):
                raise self.fail("." + "0" * digits, hold)
        elif len(hold) >= 2 and hold[0] in ".," and _digits(hold[1]):
            width = 2
            while width < len(hold) and _digits(hold[width]):
                width += 1
        else:
            return 0
        self.rest = hold[width:]
        return int((hold[1:width] + "000000")[:6])

    def zone(self) -> int:
        """Z07:00: the offset east of UTC in seconds."""
        hold = self.rest
        if hold[:1] == "Z":
            self.rest = hold[1:]
            return 0
        if len(hold) < 6 or hold[3] != ":" or not _digits(hold[1:3] + hold[4:6]):
            raise self.fail("Z07:00", hold)
        hours, minutes = int(hold[1:3]), int(hold[4:6])
        self.rest = hold[6:]
        if hours > 24:
            raise self.out_of_range("time zone offset hour")
        if minutes > 60:
            raise self.out_of_range("time zone offset minute")
        if hold[0] not in "+-":
            raise self.fail("Z07:00", hold)
        offset = hours * 3600 + minutes * 60
        return offset if hold[0] == "+" else -offset


def parse(value: str, *, micro: bool) -> datetime.datetime | None:
    """The instant `value` names, in UTC (None when that falls outside the years 1 to 9999,
    which Go takes and Python cannot hold); `TimeError` as Go words it."""
    p = _Parser(value, MICRO_LAYOUT if micro else TIME_LAYOUT)
    year = p.year()
    p.literal("-")
    month = p.number("01", fixed=True)
    if not 1 <= month <= 12:
        raise p.out_of_range("month")
    p.literal("-")
    day = p.number("02", fixed=True)
    p.literal("T")
    hour = p.number("15", fixed=False)
    if hour >= 24:
        raise p.out_of_range("hour")
    p.literal(":")
    minute = p.number("04", fixed=True)
    if minute >= 60:
        raise p.out_of_range("minute")
    p.literal(":")
    second = p.number("05", fixed=True)
    if second >= 60:
        raise p.out_of_range("second")
    micros = p.fraction(6 if micro else None)
    offset = p.zone()
    if p.rest:
        raise TimeError(f"parsing time {_quote(value)}: extra text: {_quote(p.rest)}")
    if not 1 <= day <= calendar.monthrange(year or 2000, month)[1]:  # year 0 is a leap year
        raise p.out_of_range("day")
    if not year:
        return None
    local = datetime.datetime(year, month, day, hour, minute, second, micros, datetime.UTC)
    try:
        return local - datetime.timedelta(seconds=offset)
    except OverflowError:
        return None


def canonical(value: str, *, micro: bool) -> str:
    """`value` as the server stores and answers it (UTC; to the second, or to the µs)."""
    at = parse(value, micro=micro)
    if at is None:
        return value
    if micro:
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
