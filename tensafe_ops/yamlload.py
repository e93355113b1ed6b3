"""YAML loading with `!env VAR` and `!file PATH` tags, so secrets stay out of the file."""

import os
from pathlib import Path
from typing import Any

import yaml


class SecretRefError(ValueError):
    """A `!env`/`!file` reference that cannot be resolved. Never carries the value."""


class SecretRef(str):
    """A value that came from `!env` or `!file`, not from the file's own text."""

    __slots__ = ()


def _env(loader: yaml.SafeLoader, node: yaml.Node) -> SecretRef:
    name = loader.construct_scalar(node)  # type: ignore[arg-type]
    value = os.environ.get(str(name))
    if value is None:
        raise SecretRefError(f"environment variable {name!r} referenced by !env is not set")
    return SecretRef(value)


def _file(loader: yaml.SafeLoader, node: yaml.Node) -> SecretRef:
    path = Path(str(loader.construct_scalar(node)))  # type: ignore[arg-type]
    try:
        return SecretRef(path.read_text().strip())
    except OSError as exc:
        raise SecretRefError(f"file {str(path)!r} referenced by !file: {exc.strerror}") from None


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader plus the secret-reference tags."""


ConfigLoader.add_constructor("!env", _env)
ConfigLoader.add_constructor("!file", _file)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader
