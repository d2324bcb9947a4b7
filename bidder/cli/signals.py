"""SIGTERM as an exception: `timeout`, systemd's stop or a killed session end a long command the way
Ctrl-C does, with every `with` and `finally` run (the default action killed the process at once)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["Terminated", "sigterm_raises"]


class Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread). A BaseException, as KeyboardInterrupt is: no
    `except Exception` of a retry loop takes it for a failure to retry."""


def _raise(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated; the previous handler is restored after it."""
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
