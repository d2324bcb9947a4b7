"""The tick on both markets against the emulator over HTTP: a Vast job and a job open to any market,
collected in one cycle, polled per market, never two live instances for one job, the ledger's spend
equal to Vast's billing within 1% over a week with pauses, and `any` landing where it is cheapest."""

from __future__ import annotations

import json

import pytest
from executor_helpers import RTX4090, Env, named
from two_markets import VAST4090, runpod_live, tick, vast_live
from vast_helpers import vast_client

from bidder.executor import CREATE_GRACE, Executor
from bidder.store import Store, estimate_spend
from bidder.tick import run_tick
from bidder.vast.summary import OfferFilters
from bidder.vast_pods import VastPodApi

JOB = """
[jobs.{name}]
gpu = [{gpus}]
market = "{market}"
hours = {hours}
tolerance = "{tolerance}"
max_price = 0.6
budget = 60
image = "pytorch/pytorch"
disk = 20
on_finish = "terminate"
"""


def job(name: str, market: str, *, gpus: str = f'"{VAST4090}"', hours: float = 30, tolerance: str = "high") -> str:
    return JOB.format(name=name, market=market, gpus=gpus, hours=hours, tolerance=tolerance)


def test_a_vast_job_runs_three_days_with_pauses_one_instance_and_spend_within_one_percent(both):
    env, api = both
    config = env.config('collect_interval = "2h"\n' + job("v", "vast", hours=100))
    seen_ids: set[int] = set()
    interrupted = 0
    for _ in range(3 * 24 * 4):  # every 15 virtual minutes for three days (the executor's test: a week)
        report = tick(env, api, config)
        for e in (e for e in report.events if e["event"] == "interrupted"):
            interrupted += 1
            # Said once, with when it was seen (it read "outbid or displaced (Instance paused: outbid by a
            # higher bid or displaced by an on-demand rental.)", nested and twice, with no time).
            assert e["summary"] == f"interrupted (outbid or displaced, seen at {env.emu.now:%H:%M})", e["summary"]
        live = vast_live(env.emu)
        assert len(live) <= 1, [i.id for i in live]  # never two live instances for one job
        seen_ids |= {i.id for i in live}
        env.emu.advance(900)
    tick(env, api, config)
    truth = sum(env.emu.vast.true_spend(i) for i in env.emu.vast.instances)
    ledger = sum(estimate_spend(env.store.observations(p["pod_id"])) for p in env.store.managed_pods("v"))
    assert interrupted >= 1 and seen_ids  # it was paused at least once, and it ran
    assert ledger == pytest.approx(truth, rel=0.01)
    state = env.store.job_state("v")
    assert state["spent"] == pytest.approx(truth, rel=0.01)
    assert all(p["market"] == "vast" for p in env.store.managed_pods("v"))
    assert runpod_live(env.emu) == []
    # Every mutation has its ledger row, written first and completed.
    assert env.store.actions("v", outcome="pending") == []


def test_a_job_open_to_any_market_lands_on_the_cheaper_on_demand_market(both):
    env, api = both
    config = env.config(job("a", "any", gpus=f'"{RTX4090}", "{VAST4090}"', hours=2, tolerance="none"))
    report = tick(env, api, config)
    assert report.collected  # both markets in one cycle
    markets = {c["market"] for c in env.store.collections()[-2:]}
    assert markets == {"runpod", "vast"}
    quotes = [q for q in env.store.latest_quotes() if q.gpu_count == 1 and q.uninterruptable_price
              and q.gpu_type_id in (RTX4090, VAST4090) and q.cloud in ("SECURE", "COMMUNITY", "VERIFIED")]
    cheapest = min(quotes, key=lambda q: q.uninterruptable_price)
    [pod] = env.store.managed_pods("a")
    assert pod["market"] == cheapest.market and pod["kind"] == "on_demand"
    assert len(vast_live(env.emu)) + len(runpod_live(env.emu)) == 1


def test_a_paused_vast_instance_waits_raises_or_moves_never_two(both):
    env, api = both
    config = env.config(job("v", "vast", hours=20))
    report = tick(env, api, config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    [inst] = vast_live(env.emu)
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.advance(600)
    tick(env, api, config)
    env.emu.vast.set_competitor(machine, 0.59)  # outbid hard, just under the job's cap
    for _ in range(12):
        env.emu.advance(600)
        report = tick(env, api, config)
        assert len(vast_live(env.emu)) <= 1
    kinds = [a["kind"] for a in env.store.actions("v")]
    assert kinds[0] == "rent_spot"
    # Whatever the optimizer chose (wait paused, raise the bid, or move), the job has one instance,
    # and no bid above the cap x GPUs was ever sent.
    assert all(a["bid_per_gpu"] is None or a["bid_per_gpu"] <= 0.6 + 1e-9 for a in env.store.actions("v"))
    assert all((i.price or 0) <= 0.6 * env.emu.vast.market.num_gpus[i.machine] + 1e-9
               for i in env.emu.vast.instances.values() if i.is_bid)
    assert report.jobs[0].state in ("running", "waiting")


def _running(env, api, *, hours: float):
    """Job v on Vast after its first tick: (its config, the one instance it runs on, its ledger row)."""
    config = env.config(job("v", "vast", hours=hours))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods("v")
    return config, inst, row


def test_an_outbid_instance_gets_its_bid_raised_when_the_plan_says_so(both):
    env, api = both
    config, inst, row = _running(env, api, hours=20)
    bid, tier = row["bid_per_gpu"], row["cloud"]
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.vast.set_competitor(machine, bid + 0.05)
    env.emu.advance(600)

    def plan(job, policy, now, progress):  # the plan a tick would follow: same machine, a higher bid
        from bidder.models import Decision

        assert progress.current_market == "vast" and progress.current_bid_per_gpu in (bid, bid + 0.1)
        return Decision(action="spot", gpu_type_id=VAST4090, cloud=tier, gpu_count=1, bid_per_gpu=bid + 0.1,
                        expected_cost_per_hour=bid + 0.1, expected_interruptions_per_day=1.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("raise",), market="vast")

    report = tick(env, api, config, advise=plan)
    assert report.jobs[0].state == "running" and "bid raised" in report.jobs[0].message, report.jobs[0].message
    assert inst.price == pytest.approx(bid + 0.1) and inst.was_running and vast_live(env.emu) == [inst]
    assert [a["kind"] for a in env.store.actions("v")] == ["rent_spot", "bid_resume"]
    # The same plan again while it runs changes nothing; a plan at the standing bid while paused waits.
    env.emu.vast.set_competitor(machine, bid + 0.2)
    env.emu.advance(600)
    report = tick(env, api, config, advise=plan)
    assert report.jobs[0].state == "waiting" and "resumes by itself" in report.jobs[0].message
    assert [a["kind"] for a in env.store.actions("v")] == ["rent_spot", "bid_resume"]


def test_the_budget_holds_on_vast_with_storage_in_the_ledger(both):
    env, api = both
    config = env.config(job("v", "vast", hours=100))
    for _ in range(12):  # two virtual hours, a tick every 10 minutes
        assert tick(env, api, config).jobs[0].state in ("running", "waiting")
        env.emu.advance(600)
    [inst] = vast_live(env.emu)
    spent = env.emu.vast.total_spend()  # every instance the job had (it may have moved)
    # The user lowers the budget to a little more than what is spent: the next hour no longer fits.
    lowered = env.config(job("v", "vast", hours=100).replace("budget = 60", f"budget = {spent + 0.05:.4f}"))
    report = tick(env, api, lowered)
    assert report.jobs[0].state == "budget_stopped", report.jobs[0].message
    assert f"Vast bills ${inst.storage_per_hr:.3f}/h of storage until `bidder stop {inst.id} --terminate`" \
        in report.jobs[0].message  # the disk kept bills on, outside the ledger: said
    truth = env.emu.vast.total_spend()
    state = env.store.job_state("v")
    assert state["spent"] == pytest.approx(truth, rel=0.01)  # storage included, as Vast bills it
    assert inst.intended == "stopped" and not inst.was_running  # stopped (disk kept), not running on
    [stop] = [a for a in env.store.actions("v") if a["kind"] == "stop"]
    assert stop["outcome"] == "ok" and "budget" in stop["reason"]
    env.emu.advance(600)
    stopped = tick(env, api, lowered).jobs[0]
    assert stopped.state == "budget_stopped" and not inst.was_running  # and it stays stopped
    # Its kept instance bills storage on: the line says today's spend, not the stop's.
    assert stopped.message.endswith(f"; spent ${env.store.job_state('v')['spent']:.2f} so far"), stopped.message
    # A budget raise starts the same instance again: no second one, the stopped one never left billing.
    before = set(env.emu.vast.instances)
    raised = tick(env, api, env.config(job("v", "vast", hours=100))).jobs[0]
    assert raised.state == "running" and raised.pod_id == str(inst.id), raised.message
    assert vast_live(env.emu) == [inst] and set(env.emu.vast.instances) == before
    # Started again (a stopped instance never resumes by itself, as one paused by a higher bid does).
    assert inst.intended == "running" and inst.was_running


def test_a_vast_instance_stopped_by_the_user_is_started_again_by_jobs_start(both):
    # `bidder stop` holds the job and stops its instance (its disk kept); `bidder jobs start` reopens it.
    # The tick took the stopped instance for one paused by a higher bid, said "it resumes by itself",
    # and never started it.
    from bidder.tick import reopen_stopped_pod

    env, api = both
    config, inst, row = _running(env, api, hours=100)
    ex = Executor(api, env.store)
    ex.stop_pod(row, env.emu.now, reason="stopped by `bidder stop`", state="stopped")
    env.store.save_job_state("v", state="held", note="held: its pod was stopped by `bidder stop`")
    assert inst.intended == "stopped"
    env.emu.advance(600)
    env.store.save_job_state("v", state="new", note=None)  # what `bidder jobs start v` does, with:
    assert reopen_stopped_pod(env.store, "v") == str(inst.id)
    bid, tier = row["bid_per_gpu"], row["cloud"]

    def same_plan(job, policy, now, progress):  # the plan bids on the instance's own tier at its standing bid
        from bidder.models import Decision

        return Decision(action="spot", gpu_type_id=VAST4090, cloud=tier, gpu_count=1, bid_per_gpu=bid,
                        expected_cost_per_hour=bid, expected_interruptions_per_day=1.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("same",), market="vast")

    # A dry run names what the real tick sends: the start (the bid stands as it is), not a bid change.
    dry = tick(env, api, config, advise=same_plan, dry_run=True).jobs[0]
    assert dry.state == "dry_run" and f"would resume {inst.id} at ${bid:.4f}/GPU-h (start): " in dry.message, \
        dry.message
    assert inst.intended == "stopped"
    line = tick(env, api, config, advise=same_plan).jobs[0]
    assert line.state == "running" and line.pod_id == str(inst.id), line.message
    assert inst.intended == "running" and vast_live(env.emu) == [inst]


@pytest.mark.parametrize("on_finish", ["terminate", "stop"])
def test_jobs_stop_on_a_budget_stopped_vast_job_ends_or_names_its_kept_instance(both, on_finish):
    # It said "finished; it had no pod" while the stopped instance went on billing its disk.
    from click.testing import CliRunner

    from bidder.cli import main
    from bidder.units import to_iso

    env, api = both
    text = job("v", "vast", hours=100).replace('on_finish = "terminate"', f'on_finish = "{on_finish}"')
    assert tick(env, api, env.config(text)).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    spent = env.store.job_state("v")["spent"] or 0.0
    stopped = env.config(text.replace("budget = 60", f"budget = {spent + 0.02:.4f}"))
    assert tick(env, api, stopped).jobs[0].state == "budget_stopped"
    assert inst.intended == "stopped" and not inst.destroyed
    # `bidder jobs` names the kept instance (its disk bills on): it showed "-".
    listed = CliRunner().invoke(main, ["jobs", "--config", str(env.tmp / "bidder.toml"), "--db",
                                       str(env.store.path), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["state"], row["pod"], row["market"]) == ("budget_stopped", str(inst.id), "vast")
    result = CliRunner(env={"RUNPOD_API_KEY": env.emu.api_key, "VAST_API_KEY": env.emu.api_key}).invoke(main, [
        "jobs", "--config", str(env.tmp / "bidder.toml"), "--db", str(env.store.path), "stop", "v",
        "--api-url", env.emu.url, "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now)])
    assert result.exit_code == 0, result.output + result.stderr
    if on_finish == "terminate":
        assert result.output.strip() == f"v: finished; terminate its stopped pod {inst.id}" and inst.destroyed
    else:
        assert result.output.strip() == (f"v: finished; its pod {inst.id} is kept stopped, its disk billed "
                                         f"(`bidder stop {inst.id} --terminate` deletes it)")
        assert not inst.destroyed
    assert env.store.job_state("v")["state"] == "finished"


def test_a_late_vast_create_carrying_the_jobs_label_is_destroyed_not_left_billing(both):
    env, api = both
    config = env.config(job("v", "vast", hours=20))
    assert tick(env, api, config).jobs[0].state == "running"
    [ours] = vast_live(env.emu)
    # A create of this job whose answer was lost (the ledger as `Executor._create` leaves it), its grace
    # over before it lands: the tick gives it up, and then it lands, with its label, not in the ledger.
    name, sent = named(env.store, "bidder-v", 2), env.emu.now - CREATE_GRACE
    env.store.save_job_state("v", attempts=2, pending_name=name, pending_since=sent, pending_market="vast")
    env.store.begin_action(sent, job="v", kind="deploy_on_demand", gpu_type_id=VAST4090, cloud="VERIFIED",
                           gpu_count=1, expected_cost_per_hour=0.4)
    env.emu.advance(60)
    given_up = tick(env, api, config)
    assert any(e["event"] == "pending_expired" and e["name"] == name for e in given_up.events)
    spec = api.spec(config.job("v").template, name, VAST4090, 1, "VERIFIED")
    offer = min((o for o in api.offers(spec) if o.on_demand_per_gpu), key=lambda o: o.on_demand_per_gpu)
    late = api.client.create_on_demand(offer.id, spec.instance)
    env.emu.advance(600)
    report = tick(env, api, config)
    assert [i.id for i in vast_live(env.emu)] == [ours.id] and late.id != ours.id  # one instance for the job
    assert any(e["event"] == "stray" and e["pod_id"] == str(late.id) for e in report.events)
    assert env.store.pod(str(late.id))["state"] == "retired"


def test_near_the_deadline_a_paused_instance_is_replaced_by_an_on_demand_one(both):
    env, api = both
    config = env.config(job("v", "vast", hours=20))
    assert tick(env, api, config).jobs[0].state == "running"
    [paused] = vast_live(env.emu)
    env.emu.vast.set_competitor(int(env.emu.vast.market.machine_id[paused.machine]), 0.59)
    env.emu.advance(600)

    def on_demand(job, policy, now, progress):  # the plan the optimizer makes when the deadline is near
        from bidder.models import Decision

        return Decision(action="on_demand", gpu_type_id=VAST4090, cloud="VERIFIED", gpu_count=1, bid_per_gpu=None,
                        expected_cost_per_hour=0.45, expected_interruptions_per_day=0.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("deadline",), market="vast")

    report = tick(env, api, config, advise=on_demand)
    assert report.jobs[0].state == "running" and "moved to bidder-v-2" in report.jobs[0].message
    [now_live] = vast_live(env.emu)
    assert now_live.id != paused.id and not now_live.is_bid and paused.destroyed  # one instance, on-demand
    assert [a["kind"] for a in env.store.actions("v")] == ["rent_spot", "terminate", "deploy_on_demand"]
    assert now_live.compute_per_hr <= 0.6 + 1e-9  # never above the cap per GPU


def test_a_paused_instance_that_cannot_be_destroyed_is_never_joined_by_a_second(both):
    env, api = both
    config = env.config(job("v", "vast", hours=20))
    assert tick(env, api, config).jobs[0].state == "running"
    [paused] = vast_live(env.emu)
    machine = int(env.emu.vast.market.machine_id[paused.machine])
    env.emu.vast.set_competitor(machine, 0.59)
    env.emu.advance(600)

    def on_demand(job, policy, now, progress):  # a move away from the paused instance
        from bidder.models import Decision

        return Decision(action="on_demand", gpu_type_id=VAST4090, cloud="VERIFIED", gpu_count=1, bid_per_gpu=None,
                        expected_cost_per_hour=0.45, expected_interruptions_per_day=0.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("deadline",), market="vast")

    env.emu.malform("vast:destroy", {"success": False, "error": "server_error", "msg": "Internal Server Error"},
                    status=500, execute=False, times=None)
    report = tick(env, api, config, advise=on_demand)
    assert report.jobs[0].state == "waiting" and "could not be ended" in report.jobs[0].message
    assert [i.id for i in env.emu.vast.instances.values() if not i.destroyed] == [paused.id]
    env.emu.vast.set_competitor(machine, None)  # outbidder gone: the paused instance resumes by itself
    env.emu.advance(600)
    report = tick(env, api, config, advise=on_demand)
    assert len(vast_live(env.emu)) == 1 and not paused.destroyed  # still one, still the job's
    env.emu.clear_malformed()
    env.emu.vast.set_competitor(machine, 0.59)
    env.emu.advance(600)
    report = tick(env, api, config, advise=on_demand)
    assert report.jobs[0].state == "running" and "moved to" in report.jobs[0].message, report.jobs[0].message
    [now_live] = vast_live(env.emu)
    assert now_live.id != paused.id and paused.destroyed and not now_live.is_bid


def test_a_pod_on_a_market_the_tick_cannot_reach_is_left_alone(both):
    env, api = both
    config = env.config(job("r", "runpod", gpus=f'"{RTX4090}"', hours=20))
    assert run_tick(env.client, env.store, config, env.emu.now).jobs[0].state == "running"
    [pod] = runpod_live(env.emu)
    env.emu.advance(600)
    report = run_tick(None, env.store, config, env.emu.now, vast=api)  # Vast's key alone this time
    assert report.jobs[0].state == "unknown" and "cannot reach" in report.jobs[0].message
    assert [p.id for p in runpod_live(env.emu)] == [pod.id] and pod.desired_status == "RUNNING"
    assert env.store.pod(pod.id)["state"] == "active" and vast_live(env.emu) == []


def test_a_vast_job_on_on_demand_moves_to_spot_and_ends_its_on_demand_instance(emulator, client, tmp_path):
    # No Vast history at the first tick: on-demand. Once the collector has history, the keep-or-switch
    # rule moves the job to spot; the on-demand instance is ended on Vast (not asked of RunPod, which
    # would answer "not found") before the spot one is rented: never two live instances.
    store = Store.open(tmp_path / "bidder.db")
    vclient = vast_client(emulator)
    api = VastPodApi(vclient, OfferFilters(verified_only=True, min_reliability=0.95))
    env = Env(emulator, client, store, tmp_path)
    try:
        config = env.config('collect_interval = "15m"\n' + job("m", "vast", hours=40))
        tick(env, api, config)
        [first] = vast_live(emulator)
        assert [e["event"] for e in env.events if e.get("job") == "m"] == ["deploy_on_demand"]
        for _ in range(4 * 48):
            emulator.advance(900)
            tick(env, api, config)
            assert len(vast_live(emulator)) <= 1, [i.id for i in vast_live(emulator)]
            if any(e["event"] == "rent_spot" for e in env.events):
                break
        ended = [e for e in env.events if e["event"] in ("stop", "terminate") and e.get("pod_id") == str(first.id)]
        assert ended and ended[0]["outcome"] == "ok" and ended[0]["market"] == "vast", ended
        assert emulator.vast.instances[first.id].destroyed
        [spot] = vast_live(emulator)
        assert spot.id != first.id and any(e["event"] == "rent_spot" for e in env.events)
        # The RunPod executor refuses to stop a Vast pod outright, before sending anything.
        row = next(p for p in store.managed_pods("m") if p["pod_id"] == str(spot.id))
        actions = len(store.actions("m"))
        with pytest.raises(ValueError, match="is on vast, not runpod"):
            Executor(client, store).stop_pod(row, emulator.now, reason="test")
        assert len(store.actions("m")) == actions and not emulator.vast.instances[spot.id].destroyed
    finally:
        store.close()
        vclient.close()


# -- settings only RunPod honours keep a job open to any market on RunPod ---------------------------

OPEN = job("a", "any", gpus=f'"{RTX4090}", "{VAST4090}"', hours=10)


def test_a_job_open_to_any_market_with_runpod_only_settings_is_placed_on_runpod(both):
    env, api = both
    # Vast is the cheaper plan here: the same job without ports would rent there.
    control = tick(env, api, env.config(OPEN.replace("[jobs.a]", "[jobs.control]")), dry_run=True)
    assert "(VERIFIED, vast)" in control.jobs[0].message, control.jobs[0].message
    config = env.config(OPEN + 'ports = "8888/http,22/tcp"\ntemplate_id = "tmpl1"\n')
    report = tick(env, api, config)
    line = report.jobs[0].message
    assert report.jobs[0].state == "running" and line.startswith("launched bidder-a-1-"), line
    assert line.endswith("(template_id, ports are RunPod's: planned on RunPod only)") and "vast" not in line, line
    [pod] = runpod_live(env.emu)
    assert vast_live(env.emu) == [] and env.store.managed_pods("a")[0]["market"] == "runpod"
    assert pod.ports == "8888/http,22/tcp"  # what a Vast instance would have run without
    assert env.store.job_state("a")["note"] == line  # what `bidder jobs` shows


def test_a_vast_instance_of_a_job_that_gains_a_runpod_only_setting_moves_to_runpod(both):
    env, api = both
    assert tick(env, api, env.config(OPEN)).jobs[0].message.endswith("spot @ $0.130/GPU-h + $0.003/h storage")
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    report = tick(env, api, env.config(OPEN + 'network_volume = "nv1"\n'))
    line = report.jobs[0].message
    assert line.startswith("the running pod no longer matches bidder.toml: it is on vast, and network_volume is "
                           "RunPod's: planned on RunPod only; moved to bidder-a-2-"), line
    assert inst.destroyed and vast_live(env.emu) == [] and len(runpod_live(env.emu)) == 1


def test_without_runpods_key_such_a_job_stays_on_vast_and_says_what_it_runs_without(both):
    env, api = both
    config = env.config(OPEN + 'ports = "22/tcp"\n')
    report = run_tick(None, env.store, config, env.emu.now, vast=api)  # Vast's key alone
    line = report.jobs[0].message
    assert report.jobs[0].state == "running" and "(VERIFIED, vast)" in line, line
    assert line.endswith("(ports is RunPod's, and this tick cannot reach RunPod (no RUNPOD_API_KEY): a Vast "
                         "instance runs without it)"), line
    assert len(vast_live(env.emu)) == 1 and runpod_live(env.emu) == []
    env.emu.advance(600)  # and while it runs there undecided, each line still says so
    later = run_tick(None, env.store, config, env.emu.now, vast=api).jobs[0].message
    assert later.startswith("running on ") and later.endswith("a Vast instance runs without it)"), later


def test_a_vast_job_that_inherits_runpod_only_settings_says_on_every_line_what_it_runs_without(both):
    env, api = both
    # [defaults] written for RunPod jobs; the Vast job takes them too (one in its own table is refused).
    config = env.config('[defaults]\nports = "8888/http,22/tcp"\n' + job("v", "vast", hours=20))
    note = "(ports, from [defaults], is RunPod's, and market = 'vast': a Vast instance runs without it)"
    first = tick(env, api, config).jobs[0]
    assert first.state == "running" and ", vast) spot @" in first.message, first.message
    assert first.message.endswith(note), first.message
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    later = tick(env, api, config).jobs[0]  # no decision now: the instance runs on, still without it
    assert later.message.startswith("running on ") and later.message.endswith(note), later.message
    assert env.store.job_state("v")["note"] == later.message  # what `bidder jobs` shows
    assert vast_live(env.emu) == [inst] and runpod_live(env.emu) == []



def test_a_stop_killed_before_its_last_write_is_not_undone_by_the_next_tick(both):
    # `bidder stop --job v` writes its intent, stops the instance (the row leaves `active`), then saves
    # the job held; killed between the last two, the next tick saw no pod and rented a second instance.
    env, api = both
    config = env.config(job("v", "vast", hours=30))
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    env.emu.advance(600)
    [row] = env.store.managed_pods("v", states=["active"])
    env.store.save_job_state("v", stop_intent={"pod_id": row["pod_id"], "job": {"state": "held",
                                                                               "note": "held: stopped by the user"}})
    Executor(api, env.store).stop_pod(row, env.emu.now, reason="stopped by `bidder stop`")
    assert inst.intended == "stopped"  # (and the process dies here: no "held" written)
    env.emu.advance(600)
    line = tick(env, api, config).jobs[0]
    assert line.state == "held", line.message
    assert vast_live(env.emu) == [inst] and inst.intended == "stopped"
    assert env.store.job_state("v").get("stop_intent") is None


def test_a_running_instance_is_decided_again_over_its_own_machines_minimum_bid(both):
    """The decision on a running Vast instance prices its pauses by its bid's premium over its own
    machine's minimum bid, as the poll reads it (`JobProgress.current_machine_min_bid_per_gpu`): over the
    market's floor (the next offer, once it rents the cheapest), a healthy instance was ended for
    on-demand and rented again 15 minutes later."""
    from bidder.models import Decision

    env, api = both
    config = env.config(job("v", "vast", hours=20) + 'cloud = "verified"\n')  # a tier of many machines
    assert tick(env, api, config).jobs[0].state == "running"
    [inst] = vast_live(env.emu)
    [row] = env.store.managed_pods("v")
    bid, tier = row["bid_per_gpu"], row["cloud"]
    machine = int(env.emu.vast.market.machine_id[inst.machine])
    env.emu.vast.set_competitor(machine, round(bid * 0.9, 4))  # a competitor under the bid: it still runs
    env.emu.advance(600)
    seen = []

    def keep(job, policy, now, progress):
        seen.append((progress.current_bid_per_gpu, progress.current_machine_min_bid_per_gpu))
        return Decision(action="spot", gpu_type_id=VAST4090, cloud=tier, gpu_count=1, bid_per_gpu=bid,
                        expected_cost_per_hour=bid, expected_interruptions_per_day=1.0, expected_total_cost=None,
                        expected_completion_hours=None, reasons=("keep",), market="vast")

    report = tick(env, api, config, advise=keep)
    assert report.jobs[0].state == "running" and vast_live(env.emu) == [inst] and inst.was_running
    polled = vast_client(env.emu).instance(inst.id)  # what Vast says of the instance's machine now
    assert polled.min_bid is not None and polled.min_bid / polled.num_gpus < bid
    assert seen == [(bid, pytest.approx(polled.min_bid / polled.num_gpus))]
    assert polled.min_bid / polled.num_gpus >= bid * 0.9 - 1e-9  # the competitor's bid, not the host's floor
    assert [a["kind"] for a in env.store.actions("v")] == ["rent_spot"]
