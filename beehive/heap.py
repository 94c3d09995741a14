"""Giving the C heap's free pages back to the OS once a wave of connections is up.

Input: a call when a wave of connections is up: from the fleet's ticker
(`modules.fleet.fleet`) when every node has become connected, and from cloudhub's
(`WaveRelease`) when connections stopped opening. Output: none; the process's
resident memory shrinks.

A TLS handshake allocates and frees much more than its connection keeps (OpenSSL's
handshake and record buffers, the peer's chain while it is verified, the key
exchange), and a thousand handshakes at once leave what the connections keep
scattered over pages that are otherwise free. glibc's ``free`` gives back only the
top of each heap, so those pages stayed resident: 17 KiB per idle TLS edge of the
fleet (`bench/fleet_memory_bench.py`), a quarter of its memory; the TLS server's side
of the handshake leaves the same behind in cloudcore. ``malloc_trim(0)``
gives every free page back (glibc 2.8+, every arena, the handshake threads' too), in
about 6 ms for 1,000 edges. Where the C library has no ``malloc_trim`` (musl, macOS)
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

# `WaveRelease` defaults: what counts as a wave, and how long it must have been over.
WAVE = 64  # connections opened since the last release
QUIET = 2.0  # seconds without a new connection


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the OS; False where that cannot be done."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class WaveRelease:
    """When a server gives the heap back: once `wave` connections opened since the last
    release and none for `quiet` seconds. A wave that has settled has freed what its
    handshakes allocated; one still going would scatter new connections over the pages
    again. One thread only; the clock is monotonic seconds."""

    def __init__(
        self, *, clock: Callable[[], float], wave: int = WAVE, quiet: float = QUIET,
        release: Callable[[], bool] = release_free_memory,
    ) -> None:  # fmt: skip
        self._clock = clock
        self._wave = wave  # 0: never
        self._quiet = quiet
        self._release = release
        self._opened = 0  # connections opened since the last release
        self._last = 0.0  # when the last one opened
        self.releases = 0  # releases done

    def opened(self) -> None:
        self._opened += 1
        self._last = self._clock()

    def tick(self) -> bool:
        """Release now if a wave has settled; True if released."""
        if not self._wave or self._opened < self._wave:
            return False
        if self._clock() - self._last < self._quiet:
            return False
        self._opened = 0
        self.releases += self._release()
        return True
