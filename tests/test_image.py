"""The container image without a Docker engine: hadolint on the Dockerfile, the locks agree with
pyproject.toml, and the locked install the builder stage runs works from a clean venv."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
STALE = "is stale: run `make lock` and commit requirements.txt and requirements-build.txt"


def hadolint(dockerfile: str) -> list[dict[str, str]]:
    binary = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(binary), "--format", "json", "--no-fail", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        check=True,
    )
    findings: list[dict[str, str]] = json.loads(result.stdout)
    return findings


def test_hadolint_finds_nothing() -> None:
    assert hadolint(DOCKERFILE.read_text()) == []


def test_hadolint_does_report_a_bad_dockerfile() -> None:
    """The clean result above comes from a linter that does look."""
    codes = {f["code"] for f in hadolint("FROM python:latest\nRUN pip install aiohttp\n")}
    assert {"DL3007", "DL3013", "DL3042"} <= codes


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_image_runs_the_cli_as_a_numeric_non_root_user() -> None:
    final = dict(final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["tensafe-ops"]
    assert json.loads(final["CMD"]) == ["serve", "--config", "/etc/tensafe-ops/config.yaml"]
    assert re.fullmatch(r"\$\{UID\}:\$\{UID\}", final["USER"])
    assert re.search(r"ARG UID=(\d+)", DOCKERFILE.read_text())
    assert json.loads(final["VOLUME"]) == ["/var/lib/tensafe-ops"]
    assert "/healthz" in final["HEALTHCHECK"]
    env = final["ENV"]
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "MALLOC_ARENA_MAX=2",
        "TMPDIR=/tmp",
        "TENSAFE_OPS_SERVER__STATE_DIR=/var/lib/tensafe-ops",
    ):
        assert setting in env.split()


# ---- the locks -------------------------------------------------------------------------------


def pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def locked(path: Path) -> dict[str, tuple[str, str, bool, set[str]]]:
    """name -> (version, marker, has hashes, what it is needed by) for every pin of a uv lock."""
    pins: dict[str, tuple[str, str, bool, set[str]]] = {}
    text = path.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        head = block.split("\\", 1)[0].strip()
        requirement = Requirement(head)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {head} is not pinned"
        via = set(re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9][^\n]*)", block))
        pins[canonicalize_name(requirement.name)] = (
            specs[0].version,
            str(requirement.marker or ""),
            "--hash=sha256:" in block,
            {v.strip() for v in via} - {"via"},
        )
    return pins


def check_direct(requirements: list[str], pins: dict[str, tuple[str, str, bool, set[str]]]) -> None:
    for text in requirements:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is missing from the lock: the lock {STALE}"
        version = pins[name][0]
        assert wanted.specifier.contains(version, prereleases=True), (
            f"{wanted.name}=={version} does not satisfy {text!r}: the lock {STALE}"
        )


def test_runtime_lock_matches_pyproject() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    dependencies: list[str] = project["dependencies"]
    pins = locked(ROOT / "requirements.txt")
    check_direct(dependencies, pins)
    direct = {canonicalize_name(Requirement(d).name) for d in dependencies}
    attributed = {name for name, pin in pins.items() if "tensafe-ops (pyproject.toml)" in pin[3]}
    assert attributed == direct, (
        f"pinned for pyproject.toml but no longer declared there: {sorted(attributed - direct)}; "
        f"the lock {STALE}"
    )
    assert all(pin[2] for pin in pins.values()), "every pin needs its hashes (make lock)"
    # The image needs no test tools.
    test_tools = {
        canonicalize_name(Requirement(t).name) for t in project["optional-dependencies"]["test"]
    }
    assert not (test_tools - direct) & set(pins), "test tools leaked into the runtime lock"
    assert "sqlalchemy" in pins and "greenlet" in pins  # sqlalchemy[asyncio]'s extra


def test_build_lock_matches_the_build_backend() -> None:
    build_system = pyproject()["build-system"]
    assert isinstance(build_system, dict)
    pins = locked(ROOT / "requirements-build.txt")
    check_direct(build_system["requires"], pins)
    assert all(pin[2] for pin in pins.values())


def test_stale_lock_is_reported_with_the_fix(tmp_path: Path) -> None:
    pins = locked(ROOT / "requirements.txt")
    with pytest.raises(AssertionError, match=re.escape("run `make lock`")):
        check_direct(["aiohttp>=99"], pins)
    with pytest.raises(AssertionError, match="missing from the lock"):
        check_direct(["left-pad>=1"], pins)


# ---- the locked install ------------------------------------------------------------------------


def image_python() -> str:
    """The image's Python (3.12) when this machine has it, else the one running the tests: the
    lock is universal, so it must install on either."""
    candidates = [shutil.which("python3.12"), "/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import venv, ssl"], check=False, capture_output=True
            )
            if probe.returncode == 0:
                return candidate
    return sys.executable


def builder_sources(destination: Path) -> None:
    """What the Dockerfile's builder stage COPYs, copied the same way (so a file the image
    forgets is missing here too)."""
    steps = instructions()
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    for keyword, arguments in steps[stages[0] : stages[1]]:
        if keyword != "COPY":
            continue
        *sources, target = shlex.split(arguments)
        base = destination / target if not target.startswith("/") else destination
        for source in sources:
            origin = ROOT / source
            into = base / origin.name if target.endswith("/") else base
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)


def run_builder_step(command: str, src: Path, venv: Path, python: str) -> None:
    """One `RUN scripts/install-app.sh ...` of the builder, with /src and /opt paths mapped."""
    args = shlex.split(command)
    mapped = [
        str(venv) if a == "/opt/tensafe-ops" else str(src) if a == "/src" else a for a in args
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    # Only the public index, as in the image: no local wheel folders or constraints.
    env |= {"PIP_CONFIG_FILE": os.devnull, "PYTHON": python, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [str(src / mapped[0]), *mapped[1:]],
        check=False,
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_lock_installs_with_hashes_and_the_cli_runs(tmp_path: Path) -> None:
    python = image_python()
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    builder_sources(src)
    steps = [args for keyword, args in instructions() if keyword == "RUN"]
    installs = [s for s in steps if s.startswith("scripts/install-app.sh")]
    assert len(installs) == 2, installs
    for step in installs:
        run_builder_step(step, src, venv, python)

    cli = venv / "bin" / "tensafe-ops"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"tensafe-ops, version \S+\n", version.stdout)
    # The migrations are package data: a wheel without them would fail at the first start.
    migrate = (
        "import asyncio, sys\n"
        "from tensafe_ops.storage import create_engine, migrate\n"
        "asyncio.run(migrate(create_engine(f'sqlite+aiosqlite:///{sys.argv[1]}')))\n"
    )
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", migrate, str(tmp_path / "state.db")],
        check=True,
        cwd=tmp_path,
    )
    assert (tmp_path / "state.db").stat().st_size > 0
