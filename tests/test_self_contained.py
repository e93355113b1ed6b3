"""A bare clone is enough: no file in the project reaches a path outside the repository.

Nothing here names what lies outside: a relative path is resolved, and it escapes when it
lands outside the checkout, whatever it is called.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SKIPPED_DIRS = {"__pycache__", "build", "dist", "node_modules"}
_CLIMB = re.compile(r"(?<![\w./\\])(?:\.\.[/\\])+\w[\w.-]*")
"""A relative path that starts by climbing (`../x`, `../../x/y`)."""
_RUN_FROM_ROOT = {".py", ".sh", ".toml", ".cfg", ".ini", ""}
"""Files whose relative paths are opened from the working directory (the root, where `make
test` runs them), besides from their own directory; `""`: Makefile, Dockerfile, scripts."""


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


def _outside(base: Path, reference: str, root: Path) -> bool:
    return not (base / reference).resolve().is_relative_to(root)


def escapes_in_text(text: str, where: Path, root: Path = ROOT) -> list[str]:
    """Relative climbs in a file at `where` that land outside `root`: resolved from the
    file's directory (links, includes) and, for code and scripts, from the root too; the
    checkout's own absolute path (it is somewhere else in every clone)."""
    bases = [where.parent, root] if where.suffix in _RUN_FROM_ROOT else [where.parent]
    found = [
        match.group(0)
        for match in _CLIMB.finditer(text)
        if any(_outside(base, match.group(0), root) for base in bases)
    ]
    return found + [str(root)] * text.count(str(root))


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
    """`Path(__file__)` climbs that leave the repository (e.g. `.parents[2] / "x"` in a file
    one directory below the root) in the source of a file `depth` directories below it."""
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
        if path == Path(__file__):
            continue  # its examples below climb out on purpose
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(ROOT)
        offenders += [f"{relative}: {hit!r}" for hit in escapes_in_text(text, path)]
        if path.suffix == ".py":
            depth = len(relative.parts) - 1
            offenders += [f"{relative}: {hit}" for hit in escapes_in_python(text, depth)]
    assert not offenders, "files reaching outside the repository:\n" + "\n".join(offenders)


def test_the_guard_sees_the_escapes_it_is_meant_to_catch(tmp_path: Path) -> None:
    # as if written in tests/webhook/x.py, two directories below the root
    assert escapes_in_python('Path(__file__).resolve().parents[3] / "elsewhere/x.json"\n', 2)
    assert escapes_in_python("Path(__file__).parent.parent.parent.parent\n", 2)
    assert not escapes_in_python("Path(__file__).resolve().parents[2] / 'tests'\n", 2)
    assert not escapes_in_python("Path(__file__).parent.parent.parent\n", 2)

    root = tmp_path / "checkout"
    code, doc = root / "tests" / "x.py", root / "docs" / "world" / "x.md"
    # code opens paths from the root, where the tests run
    assert escapes_in_text('open("../elsewhere/contracts/x.json")', code, root)
    assert escapes_in_text("open('../../x.json')", code, root)
    assert not escapes_in_text("open('tests/../docs/x.md')", code, root)
    # a document's links are relative to the document
    assert escapes_in_text("[x](../../../elsewhere/x.md)", doc, root)
    assert not escapes_in_text("[x](../../bench/README.md)", doc, root)
    assert not escapes_in_text("see ../x.yaml", root / "deploy" / "tests" / "x.yaml", root)
    # the checkout's own absolute path
    assert escapes_in_text(f"CONTRACTS = '{root}/tests/contracts'", code, root)
