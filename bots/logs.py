"""Log set-up: one line per event with its structured fields, as key=value pairs after the
message (text) or as one JSON object (json, for log shippers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    """Appends the record's `extra` fields, sorted, as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not fields:
            return line
        return line + " " + " ".join(f"{key}={fields[key]!r}" for key in sorted(fields))


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, then the
    record's `extra` fields (and `exc_info` with the traceback, when there is one)."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        json_ensure_ascii=False,
    )


def configure(
    level: str, *, file: Path | None = None, style: Literal["text", "json"] = "text"
) -> None:
    """Log at `level` with structured fields, as text or JSON lines: to stderr, or appended to
    `file`."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler()
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    if style == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; the Samsar client logs its own structured line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
