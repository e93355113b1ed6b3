import sys

import pytest

from tensafe_ops.malloc import limit_arenas


def test_arena_limit_applies_on_glibc_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    expected = sys.platform.startswith("linux")
    assert limit_arenas(2) is expected


def test_an_explicit_environment_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas(2) is False
