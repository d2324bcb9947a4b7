"""SIGTERM as an exception: `timeout`, systemd's stop or a killed session end a long command the way
Ctrl-C does, with every `with` and `finally` run (the default action killed the process at once)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["SigtermRaiser", "Terminated", "sigterm_raises"]


class Terminated(BaseException):
    """SIGTERM arrived (raised in the main thread). A BaseException, as KeyboardInterrupt is: no
    `except Exception` of a retry loop takes it for a failure to retry."""


class SigtermRaiser:
    """The handler `sigterm_raises` installs: raises Terminated, or after `hold()` only notes the signal,
    so that a write begun is finished whole (the block's end raises it then)."""

    def __init__(self) -> None:
        self.held = self.arrived = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.held:
            self.arrived = True
            return
        raise Terminated

    def hold(self) -> None:
        """From now to the block's end SIGTERM waits (raised as Terminated when the block ends without error)."""
        self.held = True


@contextlib.contextmanager
def sigterm_raises() -> Iterator[SigtermRaiser]:
    """Within the block, SIGTERM raises Terminated; the previous handler is restored after it."""
    raiser = SigtermRaiser()
    previous = signal.signal(signal.SIGTERM, raiser)
    try:
        yield raiser
    finally:
        signal.signal(signal.SIGTERM, previous)
    if raiser.arrived:
        raise Terminated
