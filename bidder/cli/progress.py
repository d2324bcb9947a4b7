"""Progress on stderr for long commands, only when stderr is a terminal.

    show = Progress("backtest")              # silent when stderr is piped or redirected
    show(3, 24, "window 3")                  # "backtest: window 3 (3/24, 12%), about 40 s left"
    show.close()                             # clears the line

Nothing is written when output is piped (cron logs, `--format json` consumers): a progress line is
for a person watching.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """A callable `(done, total, what)` that redraws one status line, at most every `interval` s."""

    def __init__(self, label: str, *, enabled: bool | None = None, stream: TextIO | None = None,
                 interval: float = 0.2, clock: object = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.interval, self._clock = label, interval, clock
        self._start = self._last = -1.0
        self._width = 0

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if not self.enabled:
            return
        now = self._clock()  # type: ignore[operator]
        if self._start < 0:
            self._start = now
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        text = f"{self.label}: {what}" if what else f"{self.label}:"
        if total > 0:
            text += f" ({done}/{total}, {100 * done / total:.0f}%"
            elapsed = now - self._start
            if 0 < done < total and elapsed > 0.5:
                text += f", about {_duration(elapsed * (total - done) / done)} left"
            text += ")"
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Clear the status line (before the command prints its result)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
