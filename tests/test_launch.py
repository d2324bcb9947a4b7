"""`bidder launch` through the CLI (CliRunner) and `Executor.launch`, against the emulator over HTTP:
cheapest feasible type, fallback on NoCapacity, dry runs that send nothing, spot retired, guards."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner
from executor_helpers import A40, A6000, GPUS, RTX4090, named

from bidder.cli import main
from bidder.collector import collect_once
from bidder.executor import SPOT_FLAG, SPOT_GONE_MESSAGE, Executor
from bidder.jobs import job_from_values
from bidder.models import Decision
from bidder.sim import TEST_API_KEY
from bidder.units import to_iso


def launch(env, *args: str, input: str | None = None):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})
    return runner.invoke(main, ["launch", "--db", str(env.tmp / "bidder.db"), "--api-url", env.emu.url,
                                "--now", to_iso(env.emu.now), *args], input=input)


def launch_when_spot(env, *args: str):
    """`bidder launch` until the optimizer buys spot (it may wait for a calmer market first)."""
    for _ in range(48):
        result = launch(env, *args)
        if "spot" in result.output and "Nothing launched" not in result.output and '"action": "wait"' not in result.output:
            return result
        env.emu.advance(1800)
    raise AssertionError(f"no spot decision within a day: {result.output}")


def spot_decision_now(env, ex, config):
    """Collect and decide until the decision is spot (advancing the clock); returns (decision, now)."""
    for _ in range(96):
        now = env.emu.now
        collect_once(env.client, env.store, now=now)
        decision = ex.decide(config.job, config.policy, now)
        if decision.action == "spot":
            return decision, now
        env.emu.advance(900)
    raise AssertionError(f"no spot decision within a day: {decision}")


def cheapest_on_demand(env, gpus, clouds=("SECURE", "COMMUNITY"), cap=None):
    world = env.emu.world
    prices = [(world.on_demand(g, c), g, c) for g in gpus for c in clouds if (g, c) in world.markets]
    return min((p, g, c) for p, g, c in prices if p is not None and (cap is None or p <= cap))


@pytest.mark.parametrize(("extra", "clouds", "cap"), [
    ((), ("SECURE", "COMMUNITY"), None),
    (("--cloud", "secure"), ("SECURE",), None),
    (("--max-price", "0.335"), ("SECURE", "COMMUNITY"), 0.335),
])
def test_launch_picks_the_cheapest_feasible_type(env, extra, clouds, cap):
    price, gpu, cloud = cheapest_on_demand(env, GPUS, clouds, cap)
    result = launch(env, "--gpu", "RTX A6000", "--gpu", "4090", "--gpu", A40, "--tolerance", "none",
                    "--image", "runpod/pytorch:latest", "--ports", "8888/http,22/tcp", "--yes", *extra)
    assert result.exit_code == 0, result.output + result.stderr
    pods = env.live_pods()
    assert len(pods) == 1
    pod = pods[0]
    assert (pod.gpu_type_id, pod.cloud, pod.pod_type) == (gpu, cloud, "RESERVED")
    assert pod.cost_per_hr == pytest.approx(price)
    name = named(env.store, "bidder-launch", 1)
    assert pod.name == name and pod.ports == "8888/http,22/tcp"
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Plan: {gpu} ({cloud}) on-demand")
    assert f"Launched pod {pod.id} ({name}): {gpu} x1 ({cloud}) on-demand, ${price:.3f}/h" in result.output
    assert f"https://{pod.id}-8888.proxy.runpod.net" in result.output
    assert "ssh root@" in result.output
    # The snapshot it took is stored like any collection, and the create is in the ledger.
    assert env.store.last_collection_ts() == env.emu.now
    actions = env.store.actions("bidder-launch")
    assert [(a["kind"], a["outcome"], a["pod_id"]) for a in actions] == [("deploy_on_demand", "ok", pod.id)]
    assert actions[0]["expected_cost_per_hour"] == pytest.approx(price)


def test_launch_spot_bids_per_gpu_and_json_output(env):
    result = launch_when_spot(env, "--gpu", A6000, "--gpus", "2", "--tolerance", "high", "--image", "img",
                              "--name", "exp", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output + result.stderr
    out = json.loads(result.output)
    decision, pod = out["decision"], out["pod"]
    assert decision["action"] == "spot" and decision["gpu_count"] == 2
    sim = env.emu.world.pods[pod["id"]]
    assert sim.pod_type == "INTERRUPTABLE" and sim.name == named(env.store, "exp", 1) and sim.gpu_count == 2
    # bidPerGpu is per GPU: the pod costs bid x 2 per hour (the bug two tools shipped, avoided).
    assert sim.bid == pytest.approx(decision["bid_per_gpu"])
    assert pod["cost_per_hr"] == pytest.approx(2 * decision["bid_per_gpu"])
    assert sim.bid >= env.emu.world.floor(A6000, sim.cloud) - 1e-9
    assert [a["outcome"] for a in out["attempts"]] == ["ok"] and out["dry_run"] is False


def test_dry_run_sends_nothing_and_prints_the_mutation_without_the_key(env):
    before = env.emu.world.current_spend_per_hr()
    result = launch_when_spot(env, "--gpu", A6000, "--tolerance", "high", "--keep-running", "--image", "img",
                              "--env", "TOKEN=abc", "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    assert env.emu.world.pods == {} and env.emu.world.current_spend_per_hr() == before
    out = result.output
    assert "Dry run: nothing was sent" in out and "Authorization: Bearer ****" in out
    assert "# podRentInterruptable" in out
    body = json.loads(out[out.index("# podRentInterruptable") + len("# podRentInterruptable"):])
    assert body["query"].startswith("mutation podRentInterruptable($input: PodRentInterruptableInput!)")
    fields = body["variables"]["input"]
    # (The ledger has made no create yet: the dry run, which keeps nothing, names it with a scratch id.)
    assert fields["gpuTypeId"] == A6000 and re.fullmatch(r"bidder-launch-1-[a-z0-9]{5}", fields["name"])
    assert fields["gpuCount"] == 1
    assert fields["bidPerGpu"] > 0 and fields["env"] == [{"key": "TOKEN", "value": "****"}]  # (a secret's name: masked)
    assert TEST_API_KEY not in out and TEST_API_KEY not in result.stderr
    assert env.store.actions() == []  # a dry run keeps nothing (its dry_run action went to a scratch copy)
    assert env.store.job_state("bidder-launch") is None  # no attempt number was used up
    # The plan shows the bid the request carries (to the tenth of a cent: "$0.148" read oddly beside 0.1485).
    for said in (re.search(r"spot, bid \$([0-9.]+)/GPU-h", out), re.search(r"bid \$([0-9.]+)/GPU-h -> dry_run", out)):
        assert said and float(said[1]) == pytest.approx(fields["bidPerGpu"], abs=1e-6), (fields["bidPerGpu"], out)


def test_a_capacity_error_moves_to_the_next_alternative(env):
    config = job_from_values("cap", {"gpu": list(GPUS), "tolerance": "none", "image": "img", "cloud": "community"})
    ex = Executor(env.client, env.store)
    now = env.emu.now
    collect_once(env.client, env.store, now=now)
    job = config.job_spec(now)
    decision = ex.decide(job, config.policy, now)
    assert (decision.action, decision.gpu_type_id) == ("on_demand", A6000)
    env.emu.world.set_capacity(A6000, "COMMUNITY", 0)  # gone between the snapshot and the create
    result = ex.launch(config, job, config.policy, decision, now)
    assert [(a.gpu_type_id, a.outcome) for a in result.attempts] == [(A6000, "no_capacity"), (RTX4090, "ok")]
    assert "no longer any instances available" in result.attempts[0].message
    assert result.pod is not None and env.emu.world.pods[result.pod.id].gpu_type_id == RTX4090
    assert [a.name for a in result.attempts] == [named(env.store, "bidder-cap", 1), named(env.store, "bidder-cap", 2)]
    assert [f"{a['kind']}:{a['outcome']}" for a in env.store.actions("cap")] == [
        "deploy_on_demand:error", "deploy_on_demand:ok"]


def test_the_fallback_is_bounded_and_reports_each_attempt(env):
    config = job_from_values("cap", {"gpu": list(GPUS), "tolerance": "none", "image": "img", "cloud": "community",
                                     "max_attempts": 2})
    ex = Executor(env.client, env.store)
    now = env.emu.now
    collect_once(env.client, env.store, now=now)
    job = config.job_spec(now)
    decision = ex.decide(job, config.policy, now)
    for gpu in GPUS:
        if (gpu, "COMMUNITY") in env.emu.world.markets:
            env.emu.world.set_capacity(gpu, "COMMUNITY", 0)
    result = ex.launch(config, job, config.policy, decision, now)
    assert [a.outcome for a in result.attempts] == ["no_capacity", "no_capacity"]
    assert result.pod is None and env.emu.world.pods == {}


def test_spot_unsupported_continues_on_demand_and_is_remembered(env):
    config = job_from_values("svc", {"gpu": [A6000], "tolerance": "high", "image": "img", "keep_running": True,
                                     "cloud": "community"})
    ex = Executor(env.client, env.store)
    decision, now = spot_decision_now(env, ex, config)
    env.emu.set_spot_enabled(False)  # RunPod drops the spot mutations after the snapshot
    result = ex.launch(config, config.job, config.policy, decision, now)
    assert [(a.kind, a.outcome) for a in result.attempts] == [("spot", "spot_unsupported"), ("on_demand", "ok")]
    assert any(SPOT_GONE_MESSAGE in n for n in result.notes)
    assert env.emu.world.pods[result.pod.id].pod_type == "RESERVED"
    assert env.store.settings_get(SPOT_FLAG) == to_iso(now)
    # Remembered: the next decision offers no spot, though the policy allows it.
    assert ex.decide(config.job, config.policy, now).action == "on_demand"


def test_spot_unsupported_stops_when_on_demand_is_over_the_max_price(env):
    config = job_from_values("svc", {"gpu": [A6000], "tolerance": "high", "image": "img", "keep_running": True,
                                     "cloud": "community", "max_price": 0.3})
    ex = Executor(env.client, env.store)
    decision, now = spot_decision_now(env, ex, config)
    env.emu.set_spot_enabled(False)
    result = ex.launch(config, config.job, config.policy, decision, now)
    assert result.pod is None and env.emu.world.pods == {}
    assert result.notes and result.notes[-1].startswith(SPOT_GONE_MESSAGE + ", and on-demand is not within the policy")


def test_a_launch_whose_decision_fails_still_says_that_spot_is_gone(env):
    # Every floor null: the launch marks spot gone and says so; under a cap below on-demand the decision
    # then fails, and the error alone left the user thinking spot was still there to be had.
    env.emu.set_spot_enabled(False)
    result = launch(env, "--gpu", A6000, "--image", "img", "--max-price", "0.3", "--yes")
    assert result.exit_code == 1, result.output
    assert "Note: no GPU type shows a spot price: RunPod no longer offers spot" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("Error: no candidate meets the max price")


def test_no_bid_above_the_cap_is_ever_sent(env):
    config = job_from_values("cap", {"gpu": [A6000], "image": "img", "max_price": 0.2})
    ex = Executor(env.client, env.store)
    greedy = Decision(action="spot", gpu_type_id=A6000, cloud="COMMUNITY", gpu_count=1, bid_per_gpu=0.25,
                      expected_cost_per_hour=0.25, expected_interruptions_per_day=0.0, expected_total_cost=None,
                      expected_completion_hours=None, reasons=("a hand-made decision over the cap",))
    result = ex.launch(config, config.job, config.policy, greedy, env.emu.now)
    assert [a.outcome for a in result.attempts] == ["refused"]
    assert "above the max price $0.200" in result.attempts[0].message
    assert env.emu.world.pods == {} and env.store.actions() == []
    budget = replace(config.policy, max_price=None, budget=0.1)
    result = ex.launch(config, config.job, budget, greedy, env.emu.now)
    assert "does not cover another hour" in result.attempts[0].message and env.emu.world.pods == {}


def test_max_spend_per_hour_counts_the_pods_already_running(env):
    # The first launch runs on-demand; a second one that would take the two past the cap is refused.
    args = ("--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes")
    first = launch(env, *args, "--max-spend-per-hour", "0.6")
    assert first.exit_code == 0, first.output + first.stderr
    [pod] = env.live_pods()
    assert pod.cost_per_hr <= 0.6
    second = launch(env, *args, "--name", "second", "--max-spend-per-hour", f"{pod.cost_per_hr + 0.1:.3f}")
    assert second.exit_code == 1 and env.live_pods() == [pod], second.output
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: nothing launched") and "max_spend_per_hour" in last, second.stderr
    third = launch(env, *args, "--name", "third")  # without the cap it launches
    assert third.exit_code == 0 and len(env.live_pods()) == 2, third.output + third.stderr


def test_launch_asks_before_spending(env):
    for answer in ("n\n", ""):  # no, and no answer at all (end of input, as under cron): "Aborted!" alone
        result = launch(env, "--gpu", A6000, "--tolerance", "none", "--image", "img", input=answer)
        assert result.exit_code == 1 and env.emu.world.pods == {}
        assert "Launch it?" in result.stderr
        assert result.stderr.strip().splitlines()[-1] == ("Error: nothing launched: not confirmed (answer y, or give "
                                                          "--yes to launch without asking)"), result.stderr


def test_what_launch_may_pay_past_the_plan_is_said_before_it_asks(env):
    # The user agreed to spot at the plan's bid and got on-demand at half again as much (RunPod's spot
    # refused, or no capacity): the question now names the most the alternatives may cost.
    world = env.emu.world
    result = launch(env, "--gpu", A6000, "--image", "img", "--tolerance", "high", input="n\n")
    plan = next(line for line in result.stdout.splitlines() if line.startswith("Plan: "))
    if "spot, bid $" not in plan:
        pytest.skip("the optimizer waited or went on-demand at this moment of the market")
    dearest = max(world.on_demand(A6000, c) for c in ("SECURE", "COMMUNITY") if (A6000, c) in world.markets)
    said = [line for line in result.stderr.splitlines() if "if that finds no capacity" in line]
    assert len(said) == 1 and said[0].startswith("  if that finds no capacity it tries the next alternatives, at up "
                                                 "to $"), result.stderr
    worst = float(said[0].rsplit("$", 1)[1].split("/")[0])
    assert float(plan.split("bid $")[1].split("/")[0]) < worst <= dearest + 1e-9
    assert result.stderr.index("if that finds") < result.stderr.index("Launch it?")


def test_what_launch_may_pay_past_the_plan_stays_under_the_max_price(env):
    """With --max-price 0.3 it said "at up to $0.330/GPU-h": on-demand above the cap, which the fallback,
    deciding again under the same cap, never buys."""
    result = launch(env, "--gpu", A6000, "--image", "img", "--tolerance", "high", "--max-price", "0.3", input="n\n")
    plan = next(line for line in result.stdout.splitlines() if line.startswith("Plan: "))
    if "spot, bid $" not in plan:
        pytest.skip("the optimizer waited or went on-demand at this moment of the market")
    assert env.emu.world.on_demand(A6000, "COMMUNITY") > 0.3  # (the fallback that must not be named)
    said = [line for line in result.stderr.splitlines() if "if that finds no capacity" in line]
    assert all(float(line.rsplit("$", 1)[1].split("/")[0]) <= 0.3 for line in said), result.stderr


def test_a_launch_says_its_budget_and_hours_only_chose_the_plan(env):
    # A launch is not a managed job: a pod launched with --budget 8 ran on to $15.84 without a word.
    result = launch(env, "--gpu", A6000, "--tolerance", "none", "--image", "img", "--hours", "3", "--budget", "8",
                    "--yes")
    assert result.exit_code == 0, result.output + result.stderr
    assert ("  it runs until then: --budget and --hours chose the plan, and nothing stops it there (a job in "
            "bidder.toml, run by `bidder tick`, is stopped at its budget and its hours)") in result.stdout
    plain = launch(env, "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", "--name", "other")
    assert plain.exit_code == 0 and "it runs until then" not in plain.stdout


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (("--gpu", A6000), 2, "needs --image"),
    (("--gpu", A6000, "--image", "img", "--hours", "3", "--keep-running"), 2, "--hours or --keep-running"),
    (("--gpu", A6000, "--image", "img", "--ports", "8888"), 2, "--ports 8888: '8888' is not PORT/http"),
    (("--gpu", A6000, "--image", "img", "--max-price", "0.01", "--yes"), 1, "Error: no candidate meets the max"),
    (("--gpu", "H900", "--image", "img"), 1, "Error: unknown GPU type 'H900'"),
    # As `recommend` validates them (a deadline of 0 gave "no candidate meets the tolerance").
    (("--gpu", A6000, "--image", "img", "--hours", "5", "--deadline", "0s"), 2, "the deadline must be in the future"),
    # A bare number was read as seconds.
    (("--gpu", A6000, "--image", "img", "--hours", "5", "--deadline", "90"), 2, "'90' has no unit: give one, e.g. 90s"),
    (("--gpu", A6000, "--image", "img", "--restart-overhead", "5"), 2, "'5' has no unit"),
    # A restart that would lose more than the whole job (as bidder.toml refuses it); the default 10m never is.
    (("--gpu", A6000, "--image", "img", "--hours", "2", "--restart-overhead", "3h"), 2,
     "Error: bidder launch --restart-overhead 3h is longer than --hours 2, the work: a restart would lose more "
     "than the whole job"),
    (("--gpu", A6000, "--image", "img", "--hours", "20", "--deadline", "10h", "--restart-overhead", "15h"), 2,
     "--restart-overhead 15h is longer than --deadline 10h, the deadline's window"),
    # The option, not "option: job name ...".
    (("--gpu", A6000, "--image", "img", "--name", "../x"), 2, "Invalid value for --name: '../x' must be letters"),
    # No machine has that many GPUs: said so, not "no spot history" (which sent the user to collect more).
    (("--gpu", A6000, "--image", "img", "--gpus", "16"), 1,
     "no market offers 16 GPUs in one pod of the accepted GPU types now"),
    # Past any pod any market offers (and the collector records): refused before any request (a count past
    # 2^31 reached the API: "Int cannot represent non 32-bit signed integer value").
    (("--gpu", A6000, "--image", "img", "--gpus", "99999999999999999999"), 2,
     "'--gpus': 99999999999999999999 is not in the range 1<=x<=16"),
])
def test_launch_errors_are_one_line(env, args, code, fragment):
    result = launch(env, *args)
    assert result.exit_code == code, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and fragment in last, result.stderr
    assert "Traceback" not in result.stderr
    assert env.emu.world.pods == {}


def test_an_on_demand_plan_shows_its_price_before_asking(env):
    result = launch(env, "--gpu", A6000, "--tolerance", "none", "--image", "img", "--gpus", "2", input="n\n")
    assert result.exit_code == 1 and env.emu.world.pods == {}
    plan = next(line for line in result.stdout.splitlines() if line.startswith("Plan: "))
    cloud = "SECURE" if "(SECURE)" in plan else "COMMUNITY"
    price = env.emu.world.on_demand(A6000, cloud)
    assert f"on-demand, ${price:.3f}/GPU-h x 2 GPUs = ${2 * price:.3f}/h, no interruptions" in plan, plan
    assert result.output.index("Plan: ") < result.output.index("Launch it?")


def test_launch_with_the_api_down_exits_1_with_one_line(env, tmp_path):
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY})
    result = runner.invoke(main, ["launch", "--db", str(tmp_path / "x.db"), "--api-url", "http://127.0.0.1:9/graphql",
                                  "--gpu", A6000, "--image", "img", "--yes", "--retries", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    # (On this machine the address may be the emulator's: its time is read first, and is unknown.)
    assert result.stderr.strip().endswith("reading the server's time: cannot connect (http://127.0.0.1:9/sim/now): "
                                          "[Errno 111] Connection refused; check the URL (--api-url or "
                                          "RUNPOD_API_URL) and that the service is up"), result.stderr


def test_a_runpod_name_on_a_new_database_whose_runpod_is_down_says_why_it_is_unknown(env, tmp_path):
    # Only Vast answered the first collection: RunPod's id was "unknown", with Vast's name as the close match.
    runner = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY})
    result = runner.invoke(main, ["launch", "--db", str(tmp_path / "new.db"), "--api-url", "http://127.0.0.1:9/graphql",
                                  "--vast-url", env.emu.vast_url, "--now", to_iso(env.emu.now), "--gpu", A6000,
                                  "--image", "img", "--dry-run"])
    assert result.exit_code == 1, result.output
    [error] = result.stderr.strip().splitlines()
    assert error.startswith(f"Error: unknown GPU type '{A6000}'; "), error
    assert error.endswith("the database holds no RunPod prices yet, so RunPod's GPU types are not known: collect "
                          "them with `bidder collect` (RUNPOD_API_KEY set, RunPod reachable)"), error


def test_every_execute_command_help_ends_with_an_example():
    for args in (["launch"], ["tick"], ["jobs"], ["jobs", "stop"], ["jobs", "start"], ["pods"], ["stop"], ["demo"]):
        result = CliRunner().invoke(main, [*args, "--help"])
        assert result.exit_code == 0
        tail = result.output.rstrip().splitlines()
        assert any(line.strip().startswith("Example") for line in tail[-6:]), args
        assert tail[-1].strip().startswith("bidder ") or tail[-1].strip().startswith("*/5"), args


def test_an_on_demand_plan_for_lack_of_spot_history_says_so_and_how_to_collect_it(env):
    """The history holds 1- and 2-GPU quotes: a 4-GPU launch planned on-demand with no word why (its
    reason was left out of the plan), and `bidder collect` alone never adds 4-GPU quotes."""
    result = launch(env, "--gpu", A6000, "--gpus", "4", "--tolerance", "high", "--image", "img", "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    plan, why = result.output.splitlines()[:2]
    assert plan.startswith("Plan: NVIDIA RTX A6000") and "on-demand" in plan, plan
    assert why.startswith("  why: ") and "not enough price history for spot yet: 1 of 12 samples" in why, why
    collect_once(env.client, env.store, now=env.emu.now, gpu_counts=(1, 4))  # (what a launch keeps: a dry run nothing)
    advice = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [
        "recommend", "--gpu", A6000, "--gpus", "4", "--keep-running", "--db", str(env.tmp / "bidder.db"),
        "--now", to_iso(env.emu.now)])
    assert advice.exit_code == 0, advice.output + advice.stderr
    assert "RunPod quotes 4-GPU pods only when asked: `bidder collect --gpu-counts 1,4`" in advice.output


def test_a_gpu_name_naming_several_types_is_said_before_the_plan(env):
    """`--gpu nvidia` planned whichever card was cheapest among every NVIDIA type, with no word of it."""
    result = launch(env, "--gpu", "nvidia", "--tolerance", "none", "--image", "img", "--dry-run")
    assert result.exit_code == 0, result.output + result.stderr
    note = result.output.splitlines()[0]
    assert re.fullmatch(r"Note: 'nvidia' names \d+ GPU types: (\S[^,]*, ){4}\S[^,;]* and \d+ more; the job accepts "
                        r"each \(give a full name to choose one\)", note), note
    exact = launch(env, "--gpu", A6000, "--tolerance", "none", "--image", "img", "--dry-run")
    assert exact.output.startswith("Plan: "), exact.output
