"""Giving the C heap's free pages back to the OS once a wave of connections is up.

Input: a call from the fleet's ticker (`modules.fleet.fleet`) when every node has
become connected. Output: none; the process's resident memory shrinks.

A TLS handshake allocates and frees much more than its connection keeps (OpenSSL's
handshake and record buffers, the peer's chain while it is verified, the key
exchange), and a thousand handshakes at once leave what the connections keep
scattered over pages that are otherwise free. glibc's ``free`` gives back only the
top of each heap, so those pages stayed resident: 17 KiB per idle TLS edge of the
fleet (`bench/fleet_memory_bench.py`), a quarter of its memory. ``malloc_trim(0)``
gives every free page back (glibc 2.8+, every arena, the handshake threads' too), in
about 6 ms for 1,000 edges. Where the C library has no ``malloc_trim`` (musl, macOS)
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


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
