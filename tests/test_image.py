"""The container image without a Docker engine: hadolint on the Dockerfile, the locks agree with
pyproject.toml, and the locked install the builder stage runs works from a clean venv."""

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import missing_dependency, require_binary
from tests.webhook.test_receive import free_port

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


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The builder stage's two install steps, run here into a clean venv."""
    tmp_path = tmp_path_factory.mktemp("image")
    python = image_python()
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    builder_sources(src)
    steps = [args for keyword, args in instructions() if keyword == "RUN"]
    installs = [s for s in steps if s.startswith("scripts/install-app.sh")]
    assert len(installs) == 2, installs
    for step in installs:
        run_builder_step(step, src, venv, python)
    return venv


@pytest.mark.slow
def test_lock_installs_with_hashes_and_the_cli_runs(image_venv: Path, tmp_path: Path) -> None:
    cli = image_venv / "bin" / "tensafe-ops"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"tensafe-ops, version \S+\n", version.stdout)
    # The migrations are package data: a wheel without them would fail at the first start.
    migrate = (
        "import asyncio, sys\n"
        "from tensafe_ops.storage import create_engine, migrate\n"
        "asyncio.run(migrate(create_engine(f'sqlite+aiosqlite:///{sys.argv[1]}')))\n"
    )
    subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", migrate, str(tmp_path / "state.db")],
        check=True,
        cwd=tmp_path,
    )
    assert (tmp_path / "state.db").stat().st_size > 0


# In a private mount namespace: the whole filesystem read-only, a fresh tmpfs on /tmp, as the
# chart runs the container (readOnlyRootFilesystem, an emptyDir on /tmp).
# The venv (under the host's /tmp) is bound back in, read-only.
READ_ONLY_ROOT = """set -eu
root=$1; venv=$2; shift 2
mount --bind / "$root"
mount -o remount,bind,ro "$root"
mount --bind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs -o size=256m tmpfs "$root/tmp"
mkdir -p "$root$venv"
mount --bind "$venv" "$root$venv"
mount -o remount,bind,ro "$root$venv"
exec chroot "$root" "$@"
"""


def read_only_root(tmp_path: Path, venv: Path) -> list[str]:
    """The command prefix that runs a command there, once a probe showed it works here."""
    root = tmp_path / "root"
    root.mkdir()
    namespace = ["--mount", "--propagation", "private", "sh", "-c", READ_ONLY_ROOT, "sh"]
    prefix = [require_binary("unshare"), *namespace, str(root), str(venv)]
    probe_writes = "! touch /etc/tensafe-ops-probe 2>/dev/null && touch /tmp/x"
    probe = subprocess.run(
        [*prefix, "/bin/sh", "-c", probe_writes], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        missing_dependency(f"a private read-only mount namespace (root and mount): {probe.stderr}")
    return prefix


@pytest.mark.slow
async def test_serves_with_a_read_only_root_filesystem(image_venv: Path, tmp_path: Path) -> None:
    """The installed app, demo world and all, writes only to /tmp and its state directory."""
    prefix = read_only_root(tmp_path, image_venv)
    port = free_port()
    environment = [
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        "HOME=/nonexistent",
        "TMPDIR=/tmp",
        "PYTHONDONTWRITEBYTECODE=1",
        "MALLOC_ARENA_MAX=2",
    ]
    serve = [
        str(image_venv / "bin" / "tensafe-ops"),
        "serve",
        "--demo",
        "--scale",
        "0.1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-dir",
        "/tmp/state",
    ]
    process = await asyncio.create_subprocess_exec(
        *prefix,
        *environment,
        *serve,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(90):
            while True:
                assert process.returncode is None, "serve exited on a read-only root filesystem"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/metrics") as response:
                        if (
                            'tensafe_exporter_source_up{source="zendesk"} 1.0'
                            in await response.text()
                        ):
                            break
                await asyncio.sleep(0.5)
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
            # The status pages' templates and files are package data too.
            async with session.get(f"{base}/status") as response:
                assert response.status == 200 and "Traffic light" in await response.text()
            async with session.get(f"{base}/pages/static/pages.css") as response:
                assert response.status == 200 and "prefers-color-scheme" in await response.text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()[-2000:]
