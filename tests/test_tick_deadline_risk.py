"""A job nothing can run now, waiting on its max price or budget, through the real CLI against the emulator
over HTTP (a Vast key alone): its line names why spot was ruled out too, not only on-demand's price, and
once only an on-demand run the policy refuses can still meet its deadline, `bidder tick` exits 1 with the
price or budget that saves it (it waited with exit 0 until the deadline was out of reach even on-demand)."""

from __future__ import annotations

import re

from click.testing import CliRunner
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


def job(name: str, *, deadline: str, tolerance: str, max_price: float, budget: float) -> str:
    return f"""
[jobs.{name}]
gpu = ["RTX 4090"]
market = "vast"
hours = 10
deadline = "{deadline}"
tolerance = {tolerance}
max_price = {max_price}
budget = {budget}
image = "pytorch/pytorch"
disk = 40
"""


def test_a_waiting_job_names_spots_reason_and_exits_1_while_its_deadline_can_still_be_saved(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator)
    (tmp_path / "bidder.toml").write_text(
        job("capped", deadline="10.5h", tolerance='"low"', max_price=0.2, budget=50)      # on-demand over the cap
        + job("poor", deadline="10.5h", tolerance='"low"', max_price=0.6, budget=1)       # on-demand over the budget
        + job("early", deadline="2d", tolerance="0.05", max_price=0.2, budget=50))        # time enough to change
    result = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}).invoke(main, [
        "tick", "--config", str(tmp_path / "bidder.toml"), "--db", str(tmp_path / "bidder.db"),
        "--vast-url", emulator.vast_url, "--now", to_iso(emulator.now)])
    lines = {line.split(":", 1)[0]: line for line in result.stdout.splitlines()}
    capped, poor, early = lines["capped"], lines["poor"], lines["early"]
    # (a) Spot floors sit under the cap: why spot was ruled out is said, not only on-demand's price.
    price = re.search(r"no candidate meets the max price: RTX 4090 on-demand at \$(0\.\d{3}) is over the max price "
                      r"\$0\.200; no spot: the cheapest, RTX 4090 spot at \$0\.\d{3} expects [\d.]+ interruptions per "
                      r"day of the window, over the tolerance of 0\.5/day, and cannot finish before the deadline; "
                      r"acts when on-demand is at or below \$0\.200 or a spot bid fits", capped)
    assert price is not None, capped
    # (b) Loud while it can still be saved: exit 1, one Error line with what to change.
    deadline = to_iso(emulator.now.replace(hour=10, minute=30))
    assert result.exit_code == 1, result.output
    saves = {
        "capped": (f"only on-demand can still finish its 10.0 h of work by its deadline {deadline}, 10.5 h away, and "
                   f"RTX 4090 on-demand on Vast is ${price[1]}/GPU-h, over the max price $0.200: raise max_price to "
                   f"${price[1]} or move the deadline, or the job misses it"),
        "poor": re.search(r"only on-demand can still finish its 10\.0 h of work by its deadline \S+, 10\.5 h away, "
                          r"and RTX 4090 on-demand on Vast would cost \$([\d.]+) for the work, over the \$1\.00 left "
                          r"in the budget: raise budget to \$\1 or move the deadline, or the job misses it", poor),
    }
    assert saves["poor"] is not None, poor
    assert capped.endswith(f"; {saves['capped']} (spent $0.00, 0.00 h done)"), capped
    assert result.stderr == f"Error: job capped: {saves['capped']}; job poor: {saves['poor'][0]}\n", result.stderr
    # A job with a day and more of slack waits with its reason alone: nothing to alarm cron about yet.
    assert early.startswith("early: waiting: no candidate meets the tolerance") and "only on-demand" not in early
    assert [i for i in emulator.vast.instances.values() if not i.destroyed] == []  # nothing was rented


def test_a_job_whose_spot_can_still_finish_beyond_its_tolerance_is_not_alarmed_and_spot_resumes(emulator, client,
                                                                                              tmp_path):
    """An audit's job (tolerance low, on-demand over its max price) had part of its interruption budget
    spent and spot over what was left: the alarm said "only on-demand can still finish" on 205 ticks (17 h),
    then the tick resumed spot by itself and finished early. Spot under the cap could still finish beyond
    the tolerance all along: said on the line, exit 0. The resume of its stopped pod gives its bid's
    reason, not "keeps the running pod"."""
    from executor_helpers import A6000, make_env

    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    (tmp_path / "bidder.toml").write_text(f'[jobs.anyj]\ngpu = ["{A6000}"]\ncloud = "community"\nimage = "img"\n'
                                          'hours = 48\ndeadline = "6d"\ntolerance = "low"\nmax_price = 0.25\n'
                                          'budget = 15\n')

    def tick():
        result = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": ""}).invoke(main, [
            "tick", "--config", str(tmp_path / "bidder.toml"), "--db", str(tmp_path / "bidder.db"),
            "--api-url", emulator.url, "--now", to_iso(emulator.now)])
        return result, next(line for line in result.stdout.splitlines() if line.startswith("anyj:"))

    try:
        lines = []
        for step in range(152):  # every 30 minutes, as cron's 5 minutes would see it
            if step == 5:  # one interruption (1 of the window's 3), resumed at once
                [pod] = env.running()
                emulator.world.set_floor(A6000, "COMMUNITY", round(pod.bid + 0.03, 3))
                emulator.advance(300)
                emulator.world.release_floor(A6000, "COMMUNITY")
            if step == 16:  # spot over the cap for 40 h: the second, and a spiky history spot must now fit
                emulator.world.set_floor(A6000, "COMMUNITY", 0.30)
            if step == 96:
                emulator.world.release_floor(A6000, "COMMUNITY")
            result, line = tick()
            lines.append(line)
            assert result.exit_code == 0, (step, result.output)  # the alarm exited 1 from hour 60 on
            assert "only on-demand can still finish" not in line, (step, line)
            emulator.advance(1800)
        resumes = [a["reason"] for a in env.store.actions("anyj") if a["kind"] == "bid_resume"]
        # (A stopped RunPod spot pod is decided as a fresh start: its resume gives the fresh bid's reason.)
        assert resumes and resumes[0].startswith("RTX A6000 spot at $") and \
            not any("keeps the running pod" in r for r in resumes), resumes
        # Spot over what is left of the budget, on-demand over the cap, slack under the run plus 3 h:
        noted = [line for line in lines if "not only on-demand" in line]
        assert noted, "\n".join(f"{i} {x[:230]}" for i, x in enumerate(lines))
        assert re.search(r"no candidate meets the tolerance: .*; not only on-demand: RTX A6000 spot at \$0\.\d{3} can "
                         r"still finish its [\d.]+ h by the deadline, [\d.]+ h away, beyond the tolerance \([\d.]+ "
                         r"interruptions/day\); it waits for spot that fits its interruption budget \(2 of the "
                         r"window's 3 used\), and this becomes an error only if none does while spot can still "
                         r"finish; NVIDIA RTX A6000 on-demand on RunPod is \$0\.330/GPU-h, over the max price "
                         r"\$0\.250: raise max_price to \$0\.330 to finish within the tolerance \(spent", noted[0]), noted[0]
        # The optimizer's own rule then resumes spot, with no user action.
        for _ in range(48):
            result, line = tick()
            if "running" in line.split(":", 2)[1]:
                break
            assert result.exit_code == 0, result.output
            emulator.advance(1800)
        assert [p.pod_type for p in env.running()] == ["INTERRUPTABLE"], line
    finally:
        env.store.close()
