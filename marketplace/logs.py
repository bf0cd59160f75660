"""structlog, configured once: JSON lines for services, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from marketplace.settings import Settings


def _orjson_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    stream = stream or sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    level = getattr(logging, settings.log_level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        shared.append(structlog.processors.dict_tracebacks)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    # aiokafka and asyncpg log through the standard library; keep their warnings, drop chatter.
    logging.basicConfig(
        level=max(level, logging.WARNING), stream=stream, format="%(name)s: %(message)s"
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
