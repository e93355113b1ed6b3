"""A bare clone is enough: no file in the project reads a path outside the repository."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIPPED_DIRS = {"__pycache__", "build", "dist", "node_modules"}
# A relative climb out of the tree to a sibling directory, or an absolute path into the
# machine the project happened to be developed on.
_ESCAPES = re.compile(r"\.\.[/\\]+shared\b|(?<![\w.])[/]work[/]|\bshared/(?:contracts|research)\b")


def project_files() -> Iterator[Path]:
    """Every file of the project (dot-directories, virtualenvs and build output excluded)."""
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(
            part.startswith(".") or part in _SKIPPED_DIRS or part.endswith(".egg-info")
            for part in relative.parts[:-1]
        ):
            continue
        if path.is_file() and not relative.parts[-1].startswith("."):
            yield path


def _climbs(node: ast.AST) -> int | None:
    """How many directories above `__file__` an expression reaches, if it starts there."""
    if isinstance(node, ast.Name) and node.id == "__file__":
        return 0
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "Path" and node.args:
            return _climbs(node.args[0])
        if isinstance(func, ast.Attribute) and func.attr in ("resolve", "absolute"):
            return _climbs(func.value)
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _climbs(node.value)
        return None if inner is None else inner + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        inner = _climbs(node.value.value)
        return None if inner is None else inner + node.slice.value + 1
    return None


def escapes_in_python(source: str, depth: int) -> list[str]:
    """`Path(__file__)` climbs that leave the repository (e.g. `.parents[2] / "shared"`) in
    the source of a file `depth` directories below the repository's root."""
    found = []
    for node in ast.walk(ast.parse(source)):
        climbed = _climbs(node)
        # climbing once reaches the file's own directory; depth + 1 climbs reach the root
        if climbed is not None and climbed > depth + 1:
            found.append(ast.unparse(node))
    return found


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    for path in project_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(ROOT)
        if path == Path(__file__):
            continue  # the patterns above name what they look for
        offenders += [f"{relative}: {m.group(0)!r}" for m in _ESCAPES.finditer(text)]
        if path.suffix == ".py":
            depth = len(relative.parts) - 1
            offenders += [f"{relative}: {hit}" for hit in escapes_in_python(text, depth)]
    assert not offenders, "files reaching outside the repository:\n" + "\n".join(offenders)


def test_the_guard_sees_the_escapes_it_is_meant_to_catch() -> None:
    # as if written in tests/webhook/x.py, two directories below the root
    assert escapes_in_python('Path(__file__).resolve().parents[3] / "shared/x.json"\n', 2)
    assert escapes_in_python("Path(__file__).parent.parent.parent.parent\n", 2)
    assert not escapes_in_python("Path(__file__).resolve().parents[2] / 'tests'\n", 2)
    assert not escapes_in_python("Path(__file__).parent.parent.parent\n", 2)
    # built from parts, so that this file holds no such path itself
    sibling, machine = "../" + "shared", "/" + "work/"
    assert _ESCAPES.search(f'open("{sibling}/contracts/zendesk.json")')
    assert _ESCAPES.search(f"see {machine}shared/research")
    assert not _ESCAPES.search("Path(__file__).parent / 'zendesk.json'")
