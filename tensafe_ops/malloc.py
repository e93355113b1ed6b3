"""Bound glibc's per-thread malloc arenas.

zenpy and `pagerduty` calls run in worker threads and aiosqlite keeps a thread per
connection; glibc gives each thread that allocates its own arena (up to 8 per core), and
each arena keeps its freed pages. Two arenas measured ~12 MB less peak RSS on the benchmark
world at no measurable cost. Same effect as MALLOC_ARENA_MAX=2, which still wins if set.
"""

import ctypes
import ctypes.util
import os
import sys

_M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_arenas(count: int = 2) -> bool:
    """Apply the limit on glibc Linux; a no-op (False) elsewhere or when the env var is set."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt arenas)
        return False
