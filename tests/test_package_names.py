"""No package's `__init__` binds a name that hides one of its own submodules."""

import importlib
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("tensafe_ops", "exporter", "webhook")
_NOT_IMPORTED = ("tensafe_ops.migrations",)  # Alembic's env.py runs migrations on import


def packages() -> list[ModuleType]:
    found = []
    for root in PACKAGES:
        module = importlib.import_module(root)
        found.append(module)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{root}."):
            if info.ispkg and not info.name.startswith(_NOT_IMPORTED):
                found.append(importlib.import_module(info.name))
    return found


@pytest.mark.parametrize("package", packages(), ids=lambda p: p.__name__)
def test_submodules_are_not_shadowed(package: ModuleType) -> None:
    for info in pkgutil.iter_modules(package.__path__):
        qualified = f"{package.__name__}.{info.name}"
        if qualified.startswith(_NOT_IMPORTED) or not hasattr(package, info.name):
            continue
        bound = getattr(package, info.name)
        assert bound is importlib.import_module(qualified), (
            f"{package.__name__}.{info.name} is {bound!r}, not the submodule {qualified}"
        )


def test_from_exporter_import_health_is_the_scoring_module() -> None:
    from exporter import health

    assert health.__name__ == "exporter.health"
    assert hasattr(health, "score_accounts")
