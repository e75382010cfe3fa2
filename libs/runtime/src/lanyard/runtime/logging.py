"""structlog configuration: JSON lines with the correlation id, and no secrets ever.

Redaction is by key name, so a handler that logs `password=...` by mistake still leaks nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = (
    "password", "secret", "token", "code", "otp", "totp", "assertion", "authorization", "cookie",
    "verifier", "proof", "private", "password_hash", "email", "username", "display_name", "phone",
)  # fmt: skip
_ALLOWED = {"event", "logger", "level", "timestamp", "service", "topic", "error_code", "status_code", "type"}


def _is_secret(key: str) -> bool:
    k = key.lower()
    return k not in _ALLOWED and any(s in k for s in _SECRET_KEYS)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank out every value whose key names a secret or personal datum."""
    for key in list(event_dict):
        if _is_secret(key):
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    """Configure structlog and the stdlib root logger for one service process."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(
        level=level.upper(), stream=sys.stdout, format=f"%(asctime)s {service} %(levelname)s %(name)s %(message)s"
    )
    # aiokafka logs every rebalance and reconnect at INFO; keep WARN and above.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; bind the correlation id with `bind_correlation`."""
    return structlog.get_logger(name)


def bind_correlation(correlation_id: str | None) -> None:
    """Carry a correlation id on every log line of the current task."""
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
