"""What every tensafe-admin command shares: the `main` group, the common options, the output
(table, JSON or Markdown) and one-line errors.

Every command takes `--output table|json|markdown` (a table on a terminal, JSON when piped),
`--tz` (times shown in the operator's zone; JSON stays UTC), `--url`, `--token` and
`--prometheus-url` (or TENSAFE_ADMIN_URL, TENSAFE_ADMIN_TOKEN, PROMETHEUS_URL, or
~/.config/tensafe-admin/config.toml). `status --quick` exits 0 green, 1 yellow, 2 red, 3 unknown;
other commands exit 1 with one line on stderr when the service or Prometheus cannot be reached
or answers an error.
"""

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console, RenderableType

from tensafe_admin import __version__, timefmt
from tensafe_admin.client import AdminError, Client, resolve
from tensafe_admin.render import both
from tensafe_admin.timefmt import local

F = TypeVar("F", bound=Callable[..., Any])
OUTPUTS = ("table", "json", "markdown")


@dataclass
class Run:
    client: Client
    tz: tzinfo
    output: str
    out: Console
    err: Console

    def emit(self, data: Any, rendered: RenderableType | None, markdown: str | None) -> None:
        if self.output == "json" or rendered is None:
            click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        elif self.output == "markdown":
            # A one-line answer ("Alert 3 acknowledged ...") reads the same in Markdown.
            plain = rendered if isinstance(rendered, str) else json.dumps(data, indent=2)
            click.echo(markdown if markdown is not None else plain)
        else:
            self.out.print(rendered)

    def table(
        self,
        data: Any,
        title: str,
        columns: Sequence[str],
        rows: list[list[Any]],
        notes: Sequence[str] = (),
    ) -> None:
        """The answer as one titled table with notes under it (or as JSON)."""
        self.emit(data, *both(title, columns, rows, notes))

    def time(self, value: str | None) -> str:
        return local(value, self.tz)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"tensafe-admin: {message}", err=True)
    sys.exit(code)


def common(command: F) -> F:
    """The options every command takes."""
    options = [
        click.option(
            "--output",
            "-o",
            type=click.Choice(OUTPUTS),
            help="table on a terminal, json when piped, unless told.",
        ),
        click.option(
            "--tz", help="Show times in this zone (IANA name; default: local). JSON is always UTC."
        ),
        click.option(
            "--url", help="tensafe-ops base URL (TENSAFE_ADMIN_URL; default http://127.0.0.1:9877)."
        ),
        click.option("--token", help="API token (TENSAFE_ADMIN_TOKEN)."),
        click.option(
            "--prometheus-url",
            help="Ask this Prometheus (PROMETHEUS_URL; the service must allow it).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def start(
    output: str | None,
    tz: str | None,
    url: str | None,
    token: str | None,
    prometheus_url: str | None,
) -> Run:
    settings = resolve(url, token, prometheus_url, tz)
    try:
        zone = timefmt.zone(settings.tz)
    except ValueError as exc:
        fail(str(exc), 2)
    out = Console(highlight=False, soft_wrap=False)
    err = Console(stderr=True, highlight=False)
    chosen = output or ("table" if sys.stdout.isatty() else "json")
    return Run(Client(settings, err), zone, chosen, out, err)


def not_understood(exc: KeyError | TypeError) -> str:
    """An answer without a field this client reads: a service older (or newer) than it."""
    what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
    return (
        f"tensafe-ops answered in a form this tensafe-admin {__version__} does not read ({what}):"
        " update the one that is behind"
    )


def checked(function: F) -> F:
    """One clear line and exit 1 for every AdminError (status maps its own codes), and for an
    answer of another version's shape."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AdminError as exc:
            fail(str(exc), exc.exit_code)
        except ValueError as exc:
            fail(str(exc), 2)
        except (KeyError, TypeError) as exc:
            fail(not_understood(exc))

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper  # type: ignore[return-value]


def prometheus_verdict(prometheus: Mapping[str, Any] | None) -> None:
    """Unreachable: an error (exit 1) after the output; not configured: a note."""
    if not prometheus:
        return
    if prometheus.get("configured") and not prometheus.get("reachable"):
        fail(f"{prometheus.get('error')}: operational numbers are unknown")
    if not prometheus.get("configured"):
        click.echo(
            "tensafe-admin: note: no Prometheus configured (operator.prometheus_url or "
            "--prometheus-url): operational numbers are unknown",
            err=True,
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tensafe-admin")
def main() -> None:
    """TenSafe's daily operations checklist, as commands.

    \b
    The morning routine:
      tensafe-admin status --quick                # 08:00 the traffic light
      tensafe-admin incidents list --since "8 hours ago"
      tensafe-admin metrics morning-snapshot
      tensafe-admin support summary               # 08:15
      tensafe-admin customers at-risk
      tensafe-admin customers enterprise-status
      tensafe-admin pulse                         # 10:00
      tensafe-admin capacity                      # 14:00
      tensafe-admin metrics daily-summary         # 17:00
      tensafe-admin oncall handoff --shift night --post
      tensafe-admin checklist                     # the day's template, filled
    """
