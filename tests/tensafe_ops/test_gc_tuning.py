"""Startup objects are frozen out of the collector's reach; later garbage is still collected."""

import gc

from tensafe_ops.gc_tuning import freeze_startup_objects


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_startup_objects_are_frozen_and_new_garbage_still_collected() -> None:
    try:
        frozen = freeze_startup_objects()
        assert frozen > 1000  # modules, classes, settings: everything alive at startup
        Cycle()  # unreachable after this line, kept alive only by its own cycle
        assert gc.collect() >= 1  # the frozen set is not walked, new cycles are found
    finally:
        gc.unfreeze()
