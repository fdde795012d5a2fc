"""glibc's malloc, tuned for processes that handle large buffers from several threads."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int) -> None:
    """glibc gives each thread that allocates its own malloc arena, up to 8 per core, and
    freed memory stays in the arena it came from: threads that each handle a photo would
    each keep a photo's worth of pages resident (bench.media, bench.media_pipeline). Not
    glibc (musl): nothing to do."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, arenas)
