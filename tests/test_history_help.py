"""`bidder history --help` shows a Vast example as well as RunPod's (a Vast user met only RunPod's
"NVIDIA GeForce RTX 4090"), and the Vast example runs as written on a Vast-only database."""

from __future__ import annotations

import shlex

from click.testing import CliRunner
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.store import Store
from bidder.units import to_iso


def test_history_help_has_a_vast_example_that_runs_as_written(emulator, tmp_path):
    shown = CliRunner().invoke(main, ["history", "--help"])
    assert shown.exit_code == 0
    examples = [line.split("#")[0].strip() for line in shown.output.splitlines() if line.strip().startswith("bidder history")]
    vast = [e for e in examples if "--market vast" in e]
    assert vast == ['bidder history "RTX 4090" --market vast --cloud verified'], shown.output
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        seed_vast_history(store, emulator, days=1.0)
    result = CliRunner().invoke(main, [*shlex.split(vast[0])[1:], "--db", str(db), "--now", to_iso(emulator.now)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[3:] if line.strip()]
    assert rows and all(r[:2] == ["vast", "VERIFIED"] for r in rows), result.stdout
