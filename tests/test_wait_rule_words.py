"""`min_wait_savings` as documented: the README's row is the setting's own help, and both say what the
optimizer does (`decide_by_rates`): with a deadline, a wait for the floor to settle under the bid is not
held to it even without an on-demand fallback. The row read as if every wait counted."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bidder.cli import main
from bidder.jobs import SETTINGS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_row_is_the_settings_help_and_says_which_waits_it_holds():
    help_text = next(s for s in SETTINGS if s.name == "min_wait_savings").help
    assert f"| `min_wait_savings` | 0.05 | {help_text} |" in README.read_text()
    assert "With a deadline the slack prices a wait instead, and this applies only when no on-demand under the " \
           "policy can fall back, to a wait for the floor to fall: a wait for the floor to settle need not save it" \
           in help_text
    shown = CliRunner().invoke(main, ["recommend", "--help"], terminal_width=400).output
    assert "With a --deadline only a wait for the floor to fall is held to it, and only with no on-demand under " \
           "the policy" in " ".join(shown.split())
