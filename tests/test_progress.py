"""bidder.cli.progress: a status line for a person at a terminal, nothing when output is piped."""

from __future__ import annotations

import io

from bidder.cli.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    show = Progress("backtest", stream=stream)
    show(1, 10, "window 1")
    show.close()
    assert stream.getvalue() == ""


def test_a_terminal_sees_what_how_far_and_the_time_left():
    clock = iter([0.0, 1.0, 2.0, 3.0]).__next__
    stream = FakeTerminal()
    show = Progress("backtest", stream=stream, clock=clock)
    show(1, 4, "window 1")
    show(2, 4, "window 2")
    show(4, 4, "window 4")
    lines = stream.getvalue().split("\r")[1:]
    assert lines[0].rstrip() == "backtest: window 1 (1/4, 25%)"
    assert lines[1].rstrip() == "backtest: window 2 (2/4, 50%, about 1 s left)"
    assert lines[2].rstrip() == "backtest: window 4 (4/4, 100%)"
    show.close()
    assert stream.getvalue().endswith("\r" + " " * len(lines[2].rstrip()) + "\r")


def test_updates_are_throttled_but_the_last_one_always_shows():
    clock = iter([0.0, 0.05, 0.1, 0.15]).__next__
    stream = FakeTerminal()
    show = Progress("import", stream=stream, clock=clock)
    for done in (1, 2, 3):
        show(done, 4)
    show(4, 4)
    shown = [line.rstrip() for line in stream.getvalue().split("\r")[1:]]
    assert shown == ["import: (1/4, 25%)", "import: (4/4, 100%)"]
