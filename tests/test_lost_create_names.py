"""Two lost creates in a row, against the emulator over HTTP: every create gets a name of its own, so
the first create's pod, landing after its grace, is never taken for the second's. The first create's
answer is lost (an HTTP 500, the pod made later: a create that reached the market after the client gave
up) and its grace runs out; the second create, at the next tick, loses its answer too; then the first's
pod lands, and only after a tick the second's. With one name for both, the lookup by name took the
first's pod as the second's, and the second's ran beside it as a stray until a tick retired it."""

from __future__ import annotations

from executor_helpers import A6000, ON_DEMAND_SERVICE, named
from two_markets import VAST4090, tick, vast_live

from bidder.executor import CREATE_GRACE, LEDGER_ID, pod_spec
from bidder.jobs import pod_name
from bidder.models import Decision

RUNPOD_500 = {"errors": [{"message": "Internal Server Error"}]}
VAST_500 = {"success": False, "error": "server_error", "msg": "Internal Server Error"}

VAST_JOB = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 20
tolerance = "high"
max_price = 0.6
budget = 60
image = "pytorch/pytorch"
disk = 20
on_finish = "terminate"
"""


def on_demand(job, policy, now, progress):  # the Vast plan: on-demand (so the late instance is made as sent)
    return Decision(action="on_demand", gpu_type_id=VAST4090, cloud="VERIFIED", gpu_count=1, bid_per_gpu=None,
                    expected_cost_per_hour=0.45, expected_interruptions_per_day=0.0, expected_total_cost=None,
                    expected_completion_hours=None, reasons=("test",), market="vast")


def creates(store, job: str) -> list[dict]:
    return [a for a in store.actions(job) if a["kind"] in ("rent_spot", "deploy_on_demand")]


def two_lost_creates(env, job: str, prefix: str, lose, run, land, running) -> None:
    """The scenario on one market: `lose()` spoils the next create's answer (not executed), `run()`
    ticks, `land(name)` makes the pod a create of that name would have made, `running()` lists the
    running pods' ids."""
    lose()
    assert run().jobs[0].state == "waiting"
    first = named(env.store, prefix, 1)
    assert env.store.job_state(job)["pending_name"] == first
    env.emu.advance(CREATE_GRACE.total_seconds() + 60)
    lose()
    report = run()  # the first create is given up; the second, sent now, loses its answer too
    assert any(e["event"] == "pending_expired" and e["name"] == first for e in report.events)
    second = env.store.job_state(job)["pending_name"]
    assert first in (env.store.job_state(job)["lost_names"] or [])
    assert running() == []

    late_first = land(first)  # the first create lands, long after its grace
    env.emu.advance(300)
    report = run()
    assert report.jobs[0].state == "waiting", report.jobs[0].message  # still waiting for the second create
    assert env.store.pod(late_first)["state"] == "retired" and running() == []
    assert env.store.job_state(job)["pending_name"] == second

    late_second = land(second)
    env.emu.advance(300)
    report = run()
    assert report.jobs[0].state == "running", report.jobs[0].message
    assert report.jobs[0].pod_id == late_second and running() == [late_second]
    # The ledger says which is which: the second create made the job's pod, the first's was retired.
    assert env.store.job_state(job)["pod_id"] == late_second
    assert (env.store.pod(late_second)["name"], env.store.pod(late_first)["name"]) == (second, first)
    assert second == named(env.store, prefix, 2) and env.store.job_state(job)["attempts"] == 2  # a name of its own
    assert [(a["outcome"], a.get("pod_id")) for a in creates(env.store, job)] == [("error", None),
                                                                                ("ok", late_second)]
    for _ in range(2):  # and it stays so
        env.emu.advance(300)
        assert run().jobs[0].pod_id == late_second and running() == [late_second]


def test_runpod_a_late_pod_of_a_lost_name_is_retired_not_taken_for_the_next_creates(env):
    config = env.config(ON_DEMAND_SERVICE)
    template = config.job("train").template

    def land(name: str) -> str:
        return env.client.deploy_on_demand(pod_spec(template, name, A6000, 1, "COMMUNITY")).id

    two_lost_creates(
        env, "train", "bidder-train",
        lose=lambda: env.emu.malform("podFindAndDeployOnDemand", RUNPOD_500, status=500, execute=False),
        run=lambda: env.tick(config), land=land,
        running=lambda: [p.id for p in env.running()])


def test_vast_a_late_instance_of_a_lost_label_is_destroyed_not_taken_for_the_next_creates(both):
    env, api = both
    config = env.config(VAST_JOB)
    template = config.job("v").template

    def land(name: str) -> str:
        spec = api.spec(template, name, VAST4090, 1, "VERIFIED")
        offer = min((o for o in api.offers(spec) if o.on_demand_per_gpu), key=lambda o: o.on_demand_per_gpu)
        return str(api.client.create_on_demand(offer.id, spec.instance).id)

    two_lost_creates(
        env, "v", "bidder-v",
        lose=lambda: env.emu.malform("vast:create", VAST_500, status=500, execute=False),
        run=lambda: tick(env, api, config, advise=on_demand), land=land,
        running=lambda: [str(i.id) for i in vast_live(env.emu)])


def test_an_older_ledgers_reuse_name_is_a_lost_name_not_the_next_creates(env):
    # A ledger written by a bidder that gave the next create a lost create's name: its job state
    # carries `reuse_name` (here alone, the lost name kept nowhere else). The next create takes a new
    # name, and the lost one's pod, landing later, is this ledger's: retired, not left running.
    config = env.config(ON_DEMAND_SERVICE)
    env.store.settings_set(LEDGER_ID, "old01")
    lost = pod_name("bidder-train", 1, "old01")
    env.store.save_job_state("train", attempts=1, reuse_name=lost)
    report = env.tick(config)
    assert report.jobs[0].state == "running", report.jobs[0].message
    own = report.jobs[0].pod_id
    assert env.store.pod(own)["name"] == pod_name("bidder-train", 2, "old01")
    late = env.client.deploy_on_demand(pod_spec(config.job("train").template, lost, A6000, 1, "COMMUNITY"))
    env.emu.advance(300)
    report = env.tick(config)
    assert report.jobs[0].pod_id == own and [p.id for p in env.running()] == [own]
    assert env.store.pod(late.id)["state"] == "retired"
