"""A GPU count no quote has, on Vast: its collect stores every offer there is, so the advice is another
count (or later), not RunPod's `bidder collect --gpu-counts` (which a Vast-only user was sent to)."""

from __future__ import annotations

from click.testing import CliRunner
from executor_helpers import RTX4090, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.store import Store
from bidder.units import to_iso


def _recommend(db, emulator, *extra: str):
    result = CliRunner().invoke(main, ["recommend", "--db", str(db), "--now", to_iso(emulator.now), "--gpu", "4090",
                                       "--hours", "2", "--gpus", "3", *extra])
    assert result.exit_code == 1, result.output
    return result.stderr.strip()


def test_a_vast_only_database_says_which_counts_vast_offered_not_to_collect_runpods(emulator, tmp_path):
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        seed_vast_history(store, emulator, days=1.5)
    for extra in ((), ("--market", "vast")):
        message = _recommend(db, emulator, *extra)
        assert message.endswith(": Vast's offers at the last collect had 1, 2, 4, 8 GPU(s) per machine, none 3 (its "
                                "collect stores every offer there is): ask for one of those counts (--gpus), or "
                                "try later"), message
        assert "RunPod" not in message and "--gpu-counts" not in message


def test_both_markets_each_get_their_own_advice(emulator, tmp_path):
    db = tmp_path / "bidder.db"
    with Store.open(db) as store:
        seed_history(store, emulator, days=1.5, gpus=(RTX4090,), gpu_counts=(1,))  # (ends at the new now)
        seed_vast_history(store, emulator, days=1.5)
    message = _recommend(db, emulator)
    assert message.endswith(": on RunPod the quotes collected are for pods of 1 GPU(s); collect RunPod's for 3 too "
                            "(`bidder collect --gpu-counts 1,3`); Vast's offers at the last collect had 1, 2, 4, 8 "
                            "GPU(s) per machine, none 3 (its collect stores every offer there is): ask for one of "
                            "those counts (--gpus), or try later"), message
