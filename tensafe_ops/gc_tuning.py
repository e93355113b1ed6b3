"""Keep Python's full garbage collections short.

A full (generation 2) collection walks every tracked object while holding the GIL, so it
stalls the event loop: with everything imported and set up (aiohttp, SQLAlchemy, pydantic, the
config, compiled SQL) that was tens of milliseconds, the largest part of the receiver's p99
latency (bench/README.md). Objects alive once the app has started are modules, settings and
caches that live as long as the process; `gc.freeze()` moves them out of the collector's
reach, so later collections only walk what was allocated since.
"""

import gc


def freeze_startup_objects() -> int:
    """Call once the app has started; returns how many objects were frozen."""
    gc.collect()  # garbage from startup goes first, so none of it is kept for ever
    gc.freeze()
    return gc.get_freeze_count()
