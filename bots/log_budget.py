"""A budget of log lines about input the bot ignores, so garbage cannot flood the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping


class LogBudget:
    """At most `per_minute` WARNING lines a minute about refused or ignored input; the next
    line after a full minute says how many were left out meanwhile."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_minute: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._per_minute = per_minute
        self._clock = clock
        self._window_start = -60.0
        self._used = 0
        self._left_out = 0

    def warn(self, message: str, fields: Mapping[str, object]) -> None:
        """One WARNING line with `fields` (no body, no traceback), when the budget allows."""
        now = self._clock()
        if now - self._window_start >= 60.0:
            self._window_start, self._used = now, 0
        if self._used >= self._per_minute:
            self._left_out += 1
            return
        self._used += 1
        extra = dict(fields)
        if self._left_out:
            extra["left_out"] = self._left_out
            self._left_out = 0
        self._log.warning(message, extra=extra)
