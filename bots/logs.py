"""Log set-up: one line per event with its structured fields as key=value."""

from __future__ import annotations

import logging
from pathlib import Path

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


def configure(level: str, *, file: Path | None = None) -> None:
    """Log at `level` with structured fields: to stderr, or appended to `file`."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler()
    else:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; the Samsar client logs its own structured line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
