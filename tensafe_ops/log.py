"""structlog JSON logging with secret masking applied to every event."""

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_MASK = "***"
_secrets: set[str] = set()
_configured = {"level": logging.NOTSET}
"""The level `setup_logging` filters at (NOTSET before it: structlog's default prints all)."""


def register_secrets(values: Iterable[str]) -> None:
    """Mask these strings in every later log line (config secrets, DB passwords)."""
    _secrets.update(v for v in values if len(v) >= 4)


def mask(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


def _mask_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask(value)
        elif isinstance(value, BaseException):
            event[key] = mask(repr(value))
        elif not isinstance(value, int | float | bool) and value is not None:
            event[key] = mask(str(value))
    return event


def debug_logging() -> bool:
    """Whether debug lines are written. A per-request `log.debug` costs a few microseconds
    even when filtered (the lazy logger binds on every call), so hot paths ask first."""
    return _configured["level"] <= logging.DEBUG


def setup_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    _configured["level"] = level
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
