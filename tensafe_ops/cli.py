"""The `tensafe-ops` command: serve, check-config, sandbox, --version.

Each command imports what it runs inside its body: `--version` and `--help` load click and
nothing of the service (tests/tensafe_ops/test_cli.py keeps it so; bench/cli_startup.py).
"""

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from tensafe_ops import __version__

DEMO_TICK = 30.0
"""Seconds between the demo world's changes (unless --frozen)."""

if TYPE_CHECKING:
    from tensafe_ops.clock import ClockKind
    from tensafe_ops.sandbox.product import Scenario
    from tensafe_ops.sandbox.world import World
    from tensafe_ops.settings import ConfigError, Settings


def _print_config_error(exc: "ConfigError") -> None:
    click.echo("invalid configuration:", err=True)
    for location, message in exc.details:
        click.echo(f"  {location}: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tensafe-ops")
def main() -> None:
    """TenSafe operations exporter and Alertmanager router."""


@main.command("check-config")
@click.argument("file", type=click.Path(path_type=Path))
def check_config(file: Path) -> None:
    """Validate FILE; print each invalid field and exit 1 if anything is wrong."""
    from tensafe_ops.settings import ConfigError, load_settings

    try:
        load_settings(file)
    except ConfigError as exc:
        _print_config_error(exc)
        sys.exit(1)
    click.echo(f"{file}: configuration is valid")


def _parse_scenario(
    _ctx: click.Context, _param: click.Parameter, pairs: tuple[str, ...]
) -> "Scenario | None":
    """`--scenario error_percent=12 --scenario api_down=true` into a validated Scenario."""
    if not pairs:
        return None
    from pydantic import ValidationError

    from tensafe_ops.sandbox.product import Scenario

    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE")
        fields[key.strip()] = value.strip()
    try:
        return Scenario.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise click.BadParameter(f"{where}: {first['msg']}") from None


def world_options(command: Callable[..., None]) -> Callable[..., None]:
    """--world, --scale, --seed, --scenario, --frozen and --clock: the simulated world to serve
    (sandbox, demo) and how its time runs (docs/world-file.md)."""
    options = [
        click.option(
            "--world",
            "world_file",
            type=click.Path(exists=True, path_type=Path),
            help="Load the simulated world from this JSON/YAML file instead of generating it.",
        ),
        click.option(
            "--scale",
            type=click.FloatRange(min=0.01, max=100),
            default=1.0,
            show_default=True,
            help="Multiply the default world size (300 accounts, 1,500 tickets).",
        ),
        click.option("--seed", type=int, default=42, show_default=True),
        click.option(
            "--scenario",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_parse_scenario,
            help="Set the simulated TenSafe API's scenario, e.g. error_percent=12, "
            "api_down=true (keys in docs/product-sim.md; PATCH /_sandbox/scenario changes it "
            "while running).",
        ),
        click.option(
            "--frozen",
            is_flag=True,
            help="Never change the world, and (with --clock world) stop its clock at its "
            "`now`: the same values every time, however long it runs.",
        ),
        click.option(
            "--clock",
            "clock_kind",
            type=click.Choice(["world", "wall"]),
            default="world",
            show_default=True,
            help="world: time starts at the world's `now` (a world file's) and advances from "
            "there; wall: the machine's clock (a world file's `now` jumps to today).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@world_options
@click.option(
    "--bench-size",
    is_flag=True,
    help="The benchmark world: 20,000 accounts, 100,000 tickets, 10,000 subscriptions.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".tensafe-ops/sandbox"),
    show_default=True,
    help="Where the simulated usage database is written.",
)
@click.option(
    "--tick",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between world changes (new tickets, payments failing...); 0: frozen.",
)
@click.option(
    "--zendesk-export-window",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Zendesk's export takes 10 requests per this many seconds (as Zendesk: 60). Shorter "
    "only for an exporter paced faster in step (benchmarks).",
)
def sandbox(
    world_file: Path | None,
    scale: float,
    bench_size: bool,
    seed: int,
    state_dir: Path,
    tick: float,
    zendesk_export_window: float,
    scenario: "Scenario | None",
    frozen: bool,
    clock_kind: "ClockKind",
) -> None:
    """Serve only the simulated upstreams; print their URLs and credentials as one JSON line."""
    import asyncio

    from tensafe_ops.log import setup_logging

    setup_logging("json")
    world = _build_world(world_file, scale, seed, bench_size=bench_size)
    state_dir.mkdir(parents=True, exist_ok=True)
    usage_url = f"sqlite+aiosqlite:///{state_dir / 'usage.db'}"
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _sandbox(
                world,
                usage_url,
                0 if frozen else tick,
                scenario,
                clock_kind,
                zendesk_export_window,
            )
        )


async def _sandbox(
    world: "World",
    usage_url: str,
    tick: float,
    scenario: "Scenario | None",
    clock_kind: "ClockKind",
    zendesk_export_window: float,
) -> None:
    from tensafe_ops.clock import demo_clock
    from tensafe_ops.sandbox.server import start_world

    clock = demo_clock(world.now, clock_kind, frozen=not tick)
    running = await start_world(
        world,
        usage_db_url=usage_url,
        tick_every=tick or None,
        scenario=scenario,
        clock=clock,
        zendesk_export_window=zendesk_export_window,
    )
    click.echo(json.dumps(running.describe()))
    sys.stdout.flush()
    try:
        await _wait_for_signal()
    finally:
        await running.stop()


def _build_world(
    world_file: Path | None, scale: float, seed: int, *, bench_size: bool = False
) -> "World":
    from tensafe_ops.sandbox import world as sandbox_world

    if world_file:
        try:
            return sandbox_world.load(world_file)
        except (ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"cannot load world file {world_file}: {exc}") from None
    size = sandbox_world.BENCH_SIZE if bench_size else sandbox_world.WorldSize().scaled(scale)
    return sandbox_world.generate(seed, size)


def _base_url(host: str, port: int) -> str:
    """How to reach a server listening on `host`: a wildcard address is reached on loopback."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host  # noqa: S104
    return f"http://{shown}:{port}"


async def _wait_for_signal() -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    envvar="TENSAFE_OPS_CONFIG",
    help="YAML configuration file.",
)
@click.option("--demo", is_flag=True, help="Run on the built-in simulated TenSafe world.")
@world_options
@click.option(
    "--role",
    type=click.Choice(["all", "exporter", "webhook"]),
    help="Run both halves, only the exporter or only the webhook (overrides server.role).",
)
@click.option("--host", help="Listen address (overrides server.host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port (overrides server.port).")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Directory of the SQLite state DB (overrides server.state_dir).",
)
@click.option(
    "--prometheus-url",
    help="The Prometheus the operator API asks (overrides operator.prometheus_url).",
)
def serve(
    config_file: Path | None,
    demo: bool,
    world_file: Path | None,
    scale: float,
    seed: int,
    role: str | None,
    host: str | None,
    port: int | None,
    state_dir: Path | None,
    prometheus_url: str | None,
    scenario: "Scenario | None",
    frozen: bool,
    clock_kind: "ClockKind",
) -> None:
    """Run the exporter and/or the webhook receiver."""
    import asyncio

    from tensafe_ops.log import register_secrets, setup_logging
    from tensafe_ops.malloc import limit_arenas
    from tensafe_ops.settings import ConfigError, load_settings, secret_values

    flags = {"role": role, "host": host, "port": port, "state_dir": state_dir}
    try:
        settings = load_settings(config_file).with_server(
            **{k: v for k, v in flags.items() if v is not None}
        )
        if prometheus_url is not None:
            settings = settings.with_operator(prometheus_url=prometheus_url)
    except ConfigError as exc:
        _print_config_error(exc)
        sys.exit(1)
    setup_logging(settings.server.log_format)
    register_secrets(secret_values(settings))
    limit_arenas()
    world = None
    if demo:
        world = _build_world(world_file, scale, seed)
        settings.server.state_dir.mkdir(parents=True, exist_ok=True)
    elif world_file or scenario or frozen or clock_kind != "world":
        raise click.UsageError(
            "--world, --scenario, --frozen and --clock only make sense with --demo"
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(settings, world, scenario, frozen=frozen, clock_kind=clock_kind))


def _operator_auth(settings: "Settings") -> bool:
    """Whether the operator API (and its status pages) asks for credentials."""
    return (settings.operator.api_auth or settings.webhook.api_auth) != "none"


def _pages_access(settings: "Settings") -> Literal["open", "sign-in"] | None:
    """Whether the status pages are served, and behind credentials or not."""
    operator = settings.operator
    if not (operator.enabled and operator.pages.enabled):
        return None
    return "sign-in" if _operator_auth(settings) else "open"


def _demo_stack_recipe(settings: "Settings", port: int, urls: dict[str, str]) -> str:
    """Writes the demo's Prometheus/Alertmanager files; returns how to start them."""
    from tensafe_ops.sandbox import stack
    from tensafe_ops.sandbox.server import DEMO_ROUTING_KEY, demo_has_auth, demo_receiver

    service = _base_url(settings.server.host, port).removeprefix("http://")
    directory = settings.server.state_dir / "stack"
    return stack.demo_recipe(
        directory,
        service,
        urls,
        DEMO_ROUTING_KEY,
        receiver_path=demo_receiver(settings),
        webhook_auth=demo_has_auth(settings),
    )


async def _serve(
    settings: "Settings",
    world: "World | None",
    scenario: "Scenario | None",
    *,
    frozen: bool = False,
    clock_kind: "ClockKind" = "world",
) -> None:
    from aiohttp import web

    from tensafe_ops.app import make_app
    from tensafe_ops.gc_tuning import freeze_startup_objects
    from tensafe_ops.log import get_logger, register_secrets
    from tensafe_ops.settings import secret_values

    log = get_logger("tensafe_ops")
    running = None
    exporter_clock = None
    if world is not None:
        from tensafe_ops.clock import demo_clock
        from tensafe_ops.sandbox.server import start_world

        usage_url = f"sqlite+aiosqlite:///{settings.server.state_dir / 'demo-usage.db'}"
        exporter_clock = demo_clock(world.now, clock_kind, frozen=frozen)
        running = await start_world(
            world,
            usage_db_url=usage_url,
            tick_every=None if frozen else DEMO_TICK,
            scenario=scenario,
            clock=exporter_clock,
        )
        settings = running.configure(settings)
        register_secrets(secret_values(settings))
        log.warning(
            "demo_mode",
            note="every source is the simulated TenSafe world, not real data",
            accounts=len(world.accounts),
            fakes=running.urls,
            world_now=world.now.isoformat(),
            clock=clock_kind,
            frozen=frozen,
        )

    app = make_app(settings, exporter_clock=exporter_clock)
    runner = web.AppRunner(app)
    await runner.setup()
    freeze_startup_objects()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    base = _base_url(settings.server.host, runner.addresses[0][1])
    click.echo(f"tensafe-ops {__version__} ({settings.server.role}) listening on {base}")
    if running is None:
        click.echo(f"  metrics: {base}/metrics\n  health:  {base}/healthz  {base}/readyz")
    else:
        from datetime import UTC, datetime

        from tensafe_ops.sandbox.banner import startup_block
        from tensafe_ops.sandbox.server import demo_has_auth, demo_receiver

        block = startup_block(
            base,
            running.urls,
            usage_db_url=running.usage_db_url,
            webhook=settings.runs_webhook(),
            receiver_path=demo_receiver(settings),
            webhook_auth=demo_has_auth(settings),
            alerts_api_auth=settings.webhook.api_auth != "none",
            operator_auth=_operator_auth(settings),
            now=datetime.now(UTC).replace(microsecond=0),
            stack_recipe=_demo_stack_recipe(settings, runner.addresses[0][1], running.urls),
            pages=_pages_access(settings),
        )
        click.echo(block, nl=False)
    sys.stdout.flush()
    try:
        await _wait_for_signal()
    finally:
        await runner.cleanup()
        if running is not None:
            await running.stop()
