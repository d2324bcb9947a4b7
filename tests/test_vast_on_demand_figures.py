"""A Vast on-demand plan, through the real CLI against the emulator over HTTP: `bidder launch`'s plan,
its launch line and `bidder recommend`'s table and text all say the price the emulator bills (compute
plus the storage of the job's disk at the rented offer's storage price)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from executor_helpers import RTX4090, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso


@pytest.mark.parametrize("disk", ["40", "300"])
def test_plan_launch_line_and_recommend_say_the_vast_on_demand_bill(emulator, tmp_path, disk):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    common = ["--db", str(tmp_path / "bidder.db"), "--api-url", emulator.url, "--vast-url", emulator.vast_url,
              "--now", to_iso(emulator.now)]
    job = ["--gpu", "RTX 4090", "--market", "vast", "--tolerance", "none", "--hours", "2", "--disk", disk]
    launched = runner.invoke(main, ["launch", *job, "--image", "img", "--yes", *common])
    assert launched.exit_code == 0, launched.output + launched.stderr
    [inst] = [i for i in emulator.vast.instances.values() if not i.destroyed]
    bill = inst.compute_per_hr + inst.storage_per_hr  # what the emulator bills per hour
    plan = re.search(r"^Plan: .* on-demand, \$([\d.]+)/GPU-h x 1 GPU = \$[\d.]+/h \+ \$([\d.]+)/h storage = "
                     r"\$([\d.]+)/h, no interruptions", launched.output, re.M)
    assert plan, launched.output
    compute, storage, total = map(float, plan.groups())
    # the launch line: the compute, the storage and their sum, the bill
    assert re.search(rf"on-demand, \$[\d.]+/h \+ \$[\d.]+/h storage = \${bill:.3f}/h\n", launched.output), launched.output
    if disk != "40":
        # A disk so large that an offer dearer at 10 GB but with cheaper storage is cheaper in all: the
        # launch rents that one, and the plan (priced on the offer behind the on-demand quote) is the most
        # it pays, never less.
        assert total >= round(bill, 3), launched.output
        return
    assert (compute, storage, total) == (round(inst.compute_per_hr, 3), round(inst.storage_per_hr, 3),
                                         round(bill, 3)), launched.output

    recommended = runner.invoke(main, ["recommend", *job, *common])
    assert recommended.exit_code == 0, recommended.output + recommended.stderr
    table = float(re.search(r"expected \$([\d.]+) per useful GPU-hour", recommended.output).group(1))
    assert table == pytest.approx(bill, abs=1e-4)
    assert f"on Vast on-demand at ${bill:.3f}: no interruptions, with Vast's storage of the {disk} GB disk: " \
           f"${inst.storage_per_hr:.3f}/h" in recommended.output


def test_the_max_price_holds_vast_on_demand_to_its_compute_in_the_plan_and_the_launch_alike(emulator, tmp_path):
    """The optimizer (and the launch's own check) held the cap to Vast's on-demand quote, which holds the
    storage of the 10 GB disk Vast's search priced, while the plan line and the offer the launch rents
    took the compute alone: a cap above the $0.382 the plan showed was refused as "on-demand at $0.385".
    One rule now, as for a bid: the compute per GPU-hour; the job's own disk counts in cost and budget."""
    from bidder.advisor import with_storage

    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    common = ["--db", str(tmp_path / "bidder.db"), "--api-url", emulator.url, "--vast-url", emulator.vast_url,
              "--now", to_iso(emulator.now)]
    assert runner.invoke(main, ["collect", *common]).exit_code == 0  # (the offers, with their storage prices)
    with Store.open(tmp_path / "bidder.db") as store:
        [q] = [q for q in with_storage(store, store.latest_quotes("vast"))
               if (q.gpu_type_id, q.cloud, q.gpu_count) == ("RTX 4090", "VERIFIED", 1)]
    # The storage of the 10 GB the quote holds (at its offer's storage price, else the market's median).
    searched = (q.on_demand_storage_per_gb_month or q.storage_per_gb_month) * q.on_demand_storage_gb / 720.0
    compute = q.uninterruptable_price - searched
    assert searched > 0.001
    job = ["--gpu", "RTX 4090", "--market", "vast", "--cloud", "verified", "--tolerance", "none", "--hours", "2"]

    def both(cap: float) -> tuple:
        given = ["--max-price", f"{cap:.5f}"]
        return (runner.invoke(main, ["recommend", *job, *given, *common]),
                runner.invoke(main, ["launch", *job, *given, "--image", "img", "--dry-run", *common]))

    # Over the compute by less than the 10 GB's storage: both plan it, the launch finds its offer.
    plan, launch = both(compute + searched / 2)
    assert plan.exit_code == 0 and "on Vast on-demand at $" in plan.output, plan.output + plan.stderr
    assert launch.exit_code == 0, launch.output + launch.stderr
    assert f"Plan: RTX 4090 (VERIFIED, vast) on-demand, ${compute:.3f}/GPU-h" in launch.output, launch.output
    assert "Attempt 1: on_demand RTX 4090 (VERIFIED) on-demand -> dry_run" in launch.output, launch.output
    # Under the compute: both refuse it, naming the price the plan line shows.
    cap = compute - searched / 2
    why = f"Error: no candidate meets the max price: RTX 4090 on-demand at ${compute:.3f} of compute (Vast's on-demand quote"
    for refused in both(cap):
        assert refused.exit_code == 1 and refused.stderr.startswith(why), refused.output + refused.stderr
    assert [i for i in emulator.vast.instances.values() if not i.destroyed] == []


def test_a_tick_says_and_records_the_rented_offers_on_demand_price_not_the_quotes(emulator, tmp_path):
    """The audit: "moved to ... on-demand at $0.477/h + $0.003/h storage", the ledger's expected cost
    0.4775, and the instance billed $0.4458/h: the line and the ledger said the snapshot's quote, while
    Vast's launch rents an offer of its own choosing. The offer behind the quote is taken before the
    tick here: the line, the attempt and the ledger say the instance's own price."""
    from vast_helpers import vast_client

    from bidder.advisor import with_storage
    from bidder.jobs import job_from_values
    from bidder.optimizer import on_demand_compute
    from bidder.vast.summary import OfferFilters
    from bidder.vast_pods import VastPodApi

    db, config = tmp_path / "bidder.db", tmp_path / "bidder.toml"
    config.write_text('[jobs.od]\nmarket = "vast"\ngpu = ["RTX 4090"]\ncloud = "verified"\nhours = 2\n'
                      'tolerance = "none"\ndisk = 20\nimage = "img"\n')
    runner = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY, "VAST_URL": emulator.vast_url})
    collected = runner.invoke(main, ["collect", "--market", "vast", "--db", str(db)])
    assert collected.exit_code == 0, collected.output + collected.stderr
    with Store.open(db) as store:
        [quote] = [q for q in with_storage(store, store.latest_quotes("vast"))
                   if (q.gpu_type_id, q.cloud, q.gpu_count) == ("RTX 4090", "VERIFIED", 1)]
    quoted = on_demand_compute(quote)
    with VastPodApi(vast_client(emulator), OfferFilters()) as api:
        template = job_from_values("t", {"gpu": ["RTX 4090"], "image": "img", "market": "vast", "disk": 20}).template
        probe = api.spec(template, "probe", "RTX 4090", 1, "VERIFIED")
        first = min((o for o in api.offers(probe) if o.dph_total is not None), key=lambda o: o.dph_total)
        emulator.vast.set_on_demand_renter(first.machine_id, True)  # (another user rents it first)
    ticked = runner.invoke(main, ["tick", "--config", str(config), "--db", str(db)])
    assert ticked.exit_code == 0, ticked.output + ticked.stderr
    [inst] = [i for i in emulator.vast.instances.values() if not i.destroyed]
    assert not inst.is_bid and round(inst.compute_per_hr, 3) != round(quoted, 3), (inst.compute_per_hr, quoted)
    assert f"on-demand at ${inst.compute_per_hr:.3f}/h + ${inst.storage_per_hr:.3f}/h storage" in ticked.output, \
        ticked.output
    with Store.open(db) as store:
        [create] = [a for a in store.actions("od") if a["kind"] == "deploy_on_demand"]
    assert create["outcome"] == "ok" and create["expected_cost_per_hour"] == pytest.approx(inst.compute_per_hr)



def test_an_error_naming_vasts_on_demand_says_it_is_the_compute_and_the_quote_prices_shows(emulator, tmp_path):
    """"on-demand is over the max price $0.200: the lowest is RTX 4090's on Vast, $0.344" while `prices`
    showed $0.346: the figure is the compute the max price caps, and the error now says so, with the quote."""
    from bidder.advisor import with_storage

    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator)
    runner = CliRunner(env={"RUNPOD_API_KEY": None, "VAST_API_KEY": TEST_API_KEY})
    common = ["--db", str(tmp_path / "bidder.db"), "--vast-url", emulator.vast_url, "--now", to_iso(emulator.now)]
    assert runner.invoke(main, ["collect", "--market", "vast", *common]).exit_code == 0
    with Store.open(tmp_path / "bidder.db") as store:
        [q] = [q for q in with_storage(store, store.latest_quotes("vast"))
               if (q.gpu_type_id, q.cloud, q.gpu_count) == ("RTX 4090", "VERIFIED", 1)]
    compute = q.uninterruptable_price - (q.on_demand_storage_per_gb_month or q.storage_per_gb_month) * 10 / 720.0
    prices = runner.invoke(main, ["prices", "--db", common[1]])
    shown = re.search(r"^vast\s+RTX 4090\s+24\s+VERIFIED\s+1\s+[\d.]+\s+([\d.]+)", prices.stdout, re.M)
    assert shown and float(shown[1]) == round(q.uninterruptable_price, 3), prices.output
    said = (f"${compute:.3f} of compute (Vast's on-demand quote, ${shown[1]}, holds a 10 GB disk's storage too, "
            "which the max price does not cap)")
    job = ["--gpu", "RTX 4090", "--market", "vast", "--cloud", "verified", "--hours", "24", "--max-price", "0.2"]
    for limits, where in ((["--tolerance", "none"], "no candidate meets the max price: RTX 4090 on-demand at "),
                          (["--deadline", "3d", "--tolerance", "0.1"], "on-demand is over the max price $0.200: the "
                                                                       "lowest is RTX 4090's on Vast, ")):
        refused = runner.invoke(main, ["recommend", *job, *limits, *common])
        assert refused.exit_code == 1 and f"{where}{said}" in refused.stderr, refused.output
