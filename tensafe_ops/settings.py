"""Root settings: server + exporter + webhook sections from one YAML file.

Secrets never live in the file: use `!env VAR` / `!file PATH`, or the
TENSAFE_OPS_<SECTION>__<KEY> environment variables (pydantic-settings).
"""

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from exporter.config import ExporterConfig
from operations.config import OperatorConfig
from tensafe_ops.model import Model
from tensafe_ops.yamlload import SecretRef, SecretRefError, load_yaml
from webhook.config import WebhookConfig

ENV_PREFIX = "TENSAFE_OPS_"


class ConfigError(Exception):
    """Invalid configuration, with one (location, message) pair per problem."""

    def __init__(self, details: list[tuple[str, str]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in details))


Role = Literal["all", "exporter", "webhook"]
"""Which halves a process runs: `exporter` serves the sources' metrics and registers no webhook
route or task; `webhook` receives, ingests and dispatches and runs no source."""


class ServerConfig(Model):
    role: Role = "all"
    host: str = "127.0.0.1"
    port: int = Field(default=9877, ge=0, le=65535)
    state_dir: Path = Path(".tensafe-ops")
    state_db_url: SecretStr | None = None
    """Default: sqlite+aiosqlite:///<state_dir>/tensafe-ops.db; PostgreSQL via postgresql+asyncpg://…"""
    log_format: str = Field(default="json", pattern="^(json|console)$")

    def db_url(self) -> str:
        if self.state_db_url is not None:
            return self.state_db_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.state_dir / 'tensafe-ops.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix=ENV_PREFIX, env_nested_delimiter="__"
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    demo: bool = False

    @model_validator(mode="after")
    def _role_has_its_half(self) -> "Settings":
        if self.server.role == "webhook" and not self.webhook.enabled:
            raise ValueError(
                "server.role is webhook but webhook.enabled is false: enable the webhook "
                "or run role all or exporter"
            )
        return self

    def runs_exporter(self) -> bool:
        return self.server.role in ("all", "exporter")

    def runs_webhook(self) -> bool:
        return self.server.role in ("all", "webhook")

    def with_server(self, **overrides: Any) -> "Settings":
        """A copy with these server fields replaced, validated again (e.g. CLI flags)."""
        if not overrides:
            return self
        try:
            server = ServerConfig.model_validate({**self.server.model_dump(), **overrides})
        except ValidationError as exc:
            raise _config_error(exc, ("server",)) from None
        sections = {name: getattr(self, name) for name in type(self).model_fields}
        try:
            return Settings(**{**sections, "server": server})  # every section, even a new one
        except ValidationError as exc:
            raise _config_error(exc) from None

    def with_operator(self, **overrides: Any) -> "Settings":
        """A copy with these operator fields replaced, validated again (e.g. CLI flags)."""
        try:
            operator = OperatorConfig.model_validate({**self.operator.model_dump(), **overrides})
        except ValidationError as exc:
            raise _config_error(exc, ("operator",)) from None
        return self.model_copy(update={"operator": operator})

    @model_validator(mode="after")
    def _operator_wiring(self) -> "Settings":
        """The operator API's credentials and Slack destinations live in other sections."""
        cfg = self.operator
        if not cfg.enabled:
            return self
        problems = []
        if cfg.api_auth is None and self.webhook.api_auth is None:
            problems.append(
                "operator.api_auth: set credentials (or `none`), or set webhook.api_auth"
            )
        for name in ("summary_slack", "handoff_slack"):
            destination = getattr(cfg, name)
            if destination is None:
                continue
            if not self.webhook.enabled:
                problems.append(f"operator.{name}: posting to Slack needs the webhook enabled")
            elif destination not in self.webhook.destinations.slack:
                problems.append(
                    f"operator.{name}: no slack destination {destination!r} under "
                    "webhook.destinations.slack"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def _config_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> ConfigError:
    # Never echo the input value: it may be a secret.
    return ConfigError([(_location((*prefix, *e["loc"])), e["msg"]) for e in exc.errors()])


def parse_settings(data: Any) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the configuration must be a mapping")])
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _config_error(exc) from None
    except SettingsError as exc:  # an environment value pydantic-settings cannot even parse
        raise ConfigError(_environment_errors(exc)) from None


def _environment_errors(exc: SettingsError) -> list[tuple[str, str]]:
    """Name the variables of the section the error is about (never their values, which may be
    secrets): a list or mapping field set from the environment must be written as JSON."""
    message = str(exc)
    section = message.split('"')[1] if message.count('"') >= 2 else ""
    prefix = f"{ENV_PREFIX}{section.upper()}"
    names = sorted(name for name in os.environ if name.upper().startswith(prefix)) or [prefix]
    hint = 'lists and mappings are written as JSON, e.g. \'["first", "second"]\''
    return [(name, f"cannot be parsed ({hint})") for name in names]


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return parse_settings({})
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([(str(path), exc.strerror or "cannot read")]) from None
    try:
        data = load_yaml(text)
    except SecretRefError as exc:
        raise ConfigError([(str(path), str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError([(where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None
    settings = parse_settings(data)
    literal = literal_secrets(settings, data)
    if literal:
        raise ConfigError(
            [(loc, "a secret written in the file: use !env VAR or !file PATH") for loc in literal]
        )
    return settings


# Database URLs are secrets only when they carry a password.
_URL_FIELDS = frozenset({"state_db_url", "url"})


def literal_secrets(value: Any, raw: Any, where: str = "") -> list[str]:
    """Locations of secret fields whose value was written in the YAML text itself."""
    if isinstance(value, SecretStr):
        field = where.rsplit(".", 1)[-1]
        written = isinstance(raw, str) and bool(raw) and not isinstance(raw, SecretRef)
        return [where] if written and (field not in _URL_FIELDS or urlsplit(raw).password) else []
    prefix = f"{where}." if where else ""
    if isinstance(value, BaseModel) and isinstance(raw, dict):
        return [
            loc
            for name, info in type(value).model_fields.items()
            for loc in literal_secrets(
                getattr(value, name), raw.get(info.alias or name, raw.get(name)), prefix + name
            )
        ]
    if isinstance(value, dict) and isinstance(raw, dict):
        return [
            loc
            for key, item in value.items()
            for loc in literal_secrets(item, raw.get(key), prefix + str(key))
        ]
    if isinstance(value, list) and isinstance(raw, list):
        return [
            loc
            for index, (item, raw_item) in enumerate(zip(value, raw, strict=False))
            for loc in literal_secrets(item, raw_item, prefix + str(index))
        ]
    return []


def secret_values(settings: Settings) -> list[str]:
    """Every secret in the settings, so the logger can mask them wherever they appear."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if secret:
                found.append(secret)
        elif isinstance(value, Model):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for name in Settings.model_fields:
        walk(getattr(settings, name))
    return found
