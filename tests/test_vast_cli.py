"""Vast through the real CLI against the emulator (both markets on one server): `launch --market vast
--dry-run` prints Vast's exact request (key masked), `launch --market any` lands on a market and says
which, `tick` collects both markets and acts on Vast, `pods`, `jobs` and `stop` name each pod's market."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from executor_helpers import RTX4090, named, seed_history
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso

VAST4090 = "RTX 4090"
CONFIG = f"""
[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 10
tolerance = "high"
max_price = 0.6
image = "pytorch/pytorch"
disk = 20
"""


@pytest.fixture
def env(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_history(store, emulator, gpus=(RTX4090,))
        seed_vast_history(store, emulator)
    (tmp_path / "bidder.toml").write_text(CONFIG)
    return emulator, tmp_path


def cli(env, *args: str, vast_key: bool = True, apis: bool = True):
    emu, tmp = env
    keys = {"RUNPOD_API_KEY": TEST_API_KEY, **({"VAST_API_KEY": TEST_API_KEY} if vast_key else {"VAST_API_KEY": ""})}
    urls = ["--api-url", emu.url, "--vast-url", emu.vast_url, "--now", to_iso(emu.now)] if apis else []
    return CliRunner(env=keys).invoke(main, [*args, "--db", str(tmp / "bidder.db"), *urls])


def live(emu) -> list:
    return [i for i in emu.vast.instances.values() if not i.destroyed]


def test_launch_on_vast_dry_run_prints_the_exact_request_with_the_key_masked(env):
    emu, _ = env
    result = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--max-price", "0.6", "--hours", "4",
                 "--tolerance", "high", "--image", "pytorch/pytorch", "--dry-run")
    assert result.exit_code == 0, result.output
    assert TEST_API_KEY not in result.output and '"Authorization": "Bearer ***"' in result.output
    # (The ledger has made no create yet: the dry run, which keeps nothing, names it with a scratch id.)
    assert "/api/v0/asks/" in result.output and re.search(r'"label": "bidder-launch-1-[a-z0-9]{5}"', result.output)
    assert live(emu) == []
    body = json.loads(result.output[result.output.index("{"):])["body"]
    plan = next(line for line in result.output.splitlines() if line.startswith("Plan:"))
    assert plan.startswith(f"Plan: {VAST4090} (") and ", vast) spot, bid $" in plan
    assert body["price"] <= 0.6 + 1e-9  # one GPU: bid per instance = bid per GPU, under the cap


def test_launch_on_vast_without_a_key_is_one_line(env):
    result = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--hours", "4", "--image", "img", "--yes",
                 vast_key=False)
    assert result.exit_code == 1 and "no Vast API key" in result.output and "Traceback" not in result.output


def test_launch_any_names_the_market_it_landed_on(env):
    emu, _ = env
    result = cli(env, "launch", "--market", "any", "--gpu", RTX4090, "--gpu", VAST4090, "--max-price", "0.6",
                 "--hours", "4", "--tolerance", "high", "--image", "pytorch/pytorch", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    market = data["decision"]["market"]
    runpod_live = [p for p in emu.world.pods.values() if p.desired_status != "TERMINATED"]
    assert (len(live(emu)), len(runpod_live)) == ((1, 0) if market == "vast" else (0, 1))


def test_launch_any_with_a_runpod_template_plans_on_runpod(env):
    """A RunPod template id (or network volume, or ports) keeps `--market any` on RunPod: Vast was
    chosen, then refused for want of an image."""
    result = cli(env, "launch", "--gpu", RTX4090, "--gpu", VAST4090, "--tolerance", "none",
                 "--template-id", "tmpl123", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Note: --template-id is RunPod's: planning on RunPod only" in result.stdout
    plan = next(line for line in result.stdout.splitlines() if line.startswith("Plan: "))
    assert plan.startswith(f"Plan: {RTX4090} (") and "vast" not in plan, plan
    assert "# podFindAndDeployOnDemand" in result.stdout and '"templateId": "tmpl123"' in result.stdout


def test_launch_on_vast_refuses_the_options_it_cannot_honour(env):
    emu, _ = env
    result = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--image", "img", "--ports", "22/tcp",
                 "--template-id", "t", "--network-volume", "nv", "--dry-run")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --template-id, --network-volume, --ports are RunPod's: "
                                                   "a Vast instance cannot honour them"), lines
    assert live(emu) == []


def test_launch_says_when_runpod_prices_could_not_be_refreshed(env):
    emu, tmp = env
    keys = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}
    result = CliRunner(env=keys).invoke(main, [
        "launch", "--gpu", RTX4090, "--gpu", VAST4090, "--image", "img", "--tolerance", "none", "--dry-run",
        "--retries", "1", "--db", str(tmp / "bidder.db"), "--api-url", "http://127.0.0.1:9/graphql",
        "--vast-url", emu.vast_url, "--now", to_iso(emu.now)])
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stdout.splitlines() if line.startswith("Note: "))
    assert note.startswith("Note: RunPod's prices could not be refreshed (") and "Connection refused" in note, note
    assert "the plan uses its stored prices of" in note and note.endswith("Vast's prices were refreshed"), note



def test_launch_with_a_vast_key_alone_plans_and_acts_on_vast_alone(env):
    # RunPod's price list answers without a key, so a keyless launch used to refresh RunPod, plan on
    # it (its stored history was cheaper) and fail at RunPod's create: "give an API key".
    emu, tmp = env
    keys = {"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}
    with Store.open(tmp / "bidder.db") as store:
        before = {c["id"] for c in store.collections(limit=10**6)}
    result = CliRunner(env=keys).invoke(main, [
        "launch", "--gpu", RTX4090, "--gpu", VAST4090, "--hours", "2", "--tolerance", "none", "--max-price", "0.6",
        "--image", "pytorch/pytorch", "--yes", "--db", str(tmp / "bidder.db"), "--api-url", emu.url,
        "--vast-url", emu.vast_url, "--now", to_iso(emu.now)])
    assert result.exit_code == 0, result.output + result.stderr
    plan = next(line for line in result.stdout.splitlines() if line.startswith("Plan: "))
    assert ", vast) " in plan and "Note:" not in result.output, result.output
    assert len(live(emu)) == 1 and not emu.world.pods
    # The launched line says the compute and the storage apart, as the plan line does (their sum, $0.146/h
    # beside a $0.1350/GPU-h bid, read as a rate above the bid).
    [inst] = live(emu)
    said = re.search(r"^Launched pod \S+ .*, \$(\d+\.\d{3})/h \+ \$(\d+\.\d{3})/h storage = \$[\d.]+/h$", result.stdout,
                     re.M)
    assert said is not None, result.stdout
    assert float(said.group(2)) == pytest.approx(inst.storage_per_hr, abs=5e-4)
    with Store.open(tmp / "bidder.db") as store:
        added = [c["market"] for c in store.collections(limit=10**6) if c["id"] not in before]
    assert added == ["vast"]  # no RunPod request



def test_a_vast_plan_counts_its_disks_storage_and_the_budget_holds_it(env):
    # A 500 GB disk bills ~$0.10/h beside a ~$0.12 bid: the plan said $1.25 in all for 10 hours, and a
    # launch with a $2 budget went ahead on a job that cost more than $2.
    def plan(disk: str, *extra: str):
        result = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--max-price", "0.6", "--hours", "10",
                     "--tolerance", "high", "--image", "pytorch/pytorch", "--disk", disk, "--dry-run",
                     "--format", "json", *extra)
        return result

    text = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--max-price", "0.6", "--hours", "10",
               "--tolerance", "high", "--image", "pytorch/pytorch", "--disk", "500", "--dry-run")
    line = next(line for line in text.stdout.splitlines() if line.startswith("Plan: "))
    assert re.search(r"= \$[\d.]+/h \+ \$0\.\d{3}/h storage, ", line), line  # (its hourly figure said none)
    small, big = plan("10"), plan("500")
    assert small.exit_code == 0 and big.exit_code == 0, small.output + big.output
    small_d, big_d = json.loads(small.stdout)["decision"], json.loads(big.stdout)["decision"]
    assert any("storage of the 500 GB disk" in r for r in big_d["reasons"]), big_d["reasons"]
    storage_hours = big_d["expected_total_cost"] - small_d["expected_total_cost"]
    assert storage_hours > 490 * 0.05 / 720 * 10 * 0.9  # at least the cheapest storage, for the 10 hours
    # A budget between the two: the small disk fits it, the big one is refused before anything is sent.
    budget = f"{(small_d['expected_total_cost'] + big_d['expected_total_cost']) / 2:.2f}"
    assert plan("10", "--budget", budget).exit_code == 0
    refused = plan("500", "--budget", budget)
    assert refused.exit_code == 1 and "budget" in refused.output + refused.stderr, refused.output + refused.stderr


@pytest.mark.parametrize("tolerance", ["high", "none"])
def test_tick_says_the_disks_storage_as_launchs_plan_does(env, tolerance):
    # tick --dry-run said the bid (or on-demand's compute) alone, launch's plan "+ $0.008/h storage" beside it.
    emu, tmp = env
    (tmp / "bidder.toml").write_text(CONFIG.replace('tolerance = "high"', f'tolerance = "{tolerance}"')
                                     .replace("disk = 20", "disk = 90"))
    plan = cli(env, "launch", "--market", "vast", "--gpu", VAST4090, "--max-price", "0.6", "--hours", "10",
               "--tolerance", tolerance, "--image", "pytorch/pytorch", "--disk", "90", "--dry-run")
    [line] = [line for line in plan.stdout.splitlines() if line.startswith("Plan: ")]
    said = re.search(r"x 1 GPU = \$(\d\.\d+)/h \+ \$(0\.\d{3})/h storage", line)
    dry = cli(env, "tick", "--config", str(tmp / "bidder.toml"), "--dry-run")
    # "on-demand RTX 4090 (VERIFIED, vast) at $0.3441/h + $0.019/h storage (create_on_demand)", or
    # "spot RTX 4090 (VERIFIED, vast) bid $0.2112/GPU-h x 1 GPU = $0.2112/h + $0.020/h storage (create_interruptible)"
    shown = re.search(r"would launch: (spot|on-demand) RTX 4090 \(\w+, vast\) (?:at|bid \$[\d.]+/GPU-h x 1 GPU =) "
                      r"\$(\d\.\d{4})/h \+ \$(0\.\d{3})/h storage \(create_", dry.output)
    assert dry.exit_code == 0 and said and shown, line + "\n" + dry.output
    assert shown[1] == ("on-demand" if tolerance == "none" else "spot")
    assert f"{float(shown[2]):.{len(said[1]) - 2}f}" == said[1] and shown[3] == said[2], line + "\n" + dry.output
    # Launched, the line says what the instance it rented bills for its disk (its machine's storage price).
    ran = cli(env, "tick", "--config", str(tmp / "bidder.toml"))
    [inst] = live(emu)
    assert ran.exit_code == 0 and f" + ${inst.storage_per_hr:.3f}/h storage (spent $" in ran.output, ran.output


def test_pods_says_when_its_figures_are_from_an_old_poll(env):
    # An hour after a launch, `pods` still showed "RUNNING 0s 0.000" with no word that nothing had polled since.
    emu, tmp = env
    assert cli(env, "tick", "--config", str(tmp / "bidder.toml")).exit_code == 0
    polled = emu.now
    emu.advance(600)
    fresh = cli(env, "pods")
    assert fresh.exit_code == 0 and "last poll" not in fresh.output, fresh.output  # (10 minutes: a tick's cadence)
    emu.advance(3000)
    old = cli(env, "pods")
    assert old.exit_code == 0, old.output
    lines = old.output.splitlines()
    assert lines[3] == f"as of the last poll at {polled:%H:%M} UTC (60m ago): --refresh polls now", old.output
    refreshed = cli(env, "pods", "--refresh")
    assert refreshed.exit_code == 0 and "last poll" not in refreshed.output, refreshed.output
    assert "last poll" not in cli(env, "pods").output  # (polled now)
    assert "last poll" not in cli(env, "pods", "--format", "json").output  # (its last_seen says it)


def test_tick_pods_jobs_and_stop_on_vast(env):
    emu, tmp = env
    config = ["--config", str(tmp / "bidder.toml")]
    result = cli(env, "tick", *config)
    assert result.exit_code == 0, result.output
    with Store.open(tmp / "bidder.db") as store:
        name = named(store, "bidder-v", 1)
    assert f"v: running: launched {name} on RTX 4090 (" in result.output and ", vast) spot @" in result.output
    with Store.open(tmp / "bidder.db") as store:
        assert {c["market"] for c in store.collections()[-2:]} == {"runpod", "vast"}
    [inst] = live(emu)
    emu.advance(600)
    pods = cli(env, "pods", "--refresh")
    assert pods.exit_code == 0, pods.output
    header, _, line = pods.output.splitlines()[:3]
    assert header.split()[:2] == ["pod", "market"] and line.split()[:2] == [str(inst.id), "vast"]
    jobs = cli(env, "jobs", *config, "--format", "json", apis=False)
    assert json.loads(jobs.output)[0]["market"] == "vast"
    report = cli(env, "report", "--since", "all", "--format", "json", apis=False)
    assert report.exit_code == 0, report.output
    [pod] = json.loads(report.output)["pods"]
    assert pod["market"] == "vast" and pod["pod_id"] == str(inst.id) and pod["spend"] > 0
    assert pod["hours"] == pytest.approx(inst.running_s / 3600, rel=0.01)  # storage is money, not hours
    table = cli(env, "report", "--since", "all", apis=False)
    assert "market" in table.output and " vast " in table.output
    # Kept stopped, its disk bills: `bidder pods` lists it at its storage rate (it showed "no managed pods
    # running", the instance billing on out of sight); destroyed, it bills nothing and leaves the list.
    assert cli(env, "stop", str(inst.id)).exit_code == 0
    kept = json.loads(cli(env, "pods", "--format", "json", apis=False).output)
    assert [(p["pod"], p["state"]) for p in kept] == [(str(inst.id), "stopped")]
    assert kept[0]["cost_per_hr"] == pytest.approx(inst.storage_per_hr, abs=1e-4) and kept[0]["cost_per_hr"] > 0
    # The table says how to end that storage, as it does for a stopped RunPod pod's volume.
    assert cli(env, "pods", apis=False).output.splitlines()[-1] == (
        "stopped Vast instances keep their disk, whose storage Vast bills until they are destroyed: "
        f"`bidder stop {inst.id} --terminate` deletes one")
    stopped = cli(env, "stop", str(inst.id), "--terminate")
    assert stopped.exit_code == 0, stopped.output
    assert f"terminated pod {inst.id} on vast (job v is held)" in stopped.output
    assert live(emu) == []
    assert cli(env, "pods", apis=False).output.startswith("no managed pods billing")


def test_a_vast_url_that_cannot_be_reached_names_vasts_options_alone(env):
    _, tmp = env
    result = CliRunner(env={"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--db", str(tmp / "bidder.db"), "--vast-url", "http://127.0.0.1:9", "--retries", "1"])
    assert result.exit_code == 1, result.output
    [error] = result.stderr.strip().splitlines()
    assert error.endswith("; check the URL (--vast-url or VAST_URL) and that the service is up"), error
    assert "RUNPOD" not in error and "--api-url" not in error


def test_a_tick_that_cannot_know_an_instances_state_exits_1(env):
    # Left out of the list and answered `"instances": null`: nothing is done for the job, whose budget and
    # hours go unkept meanwhile; exit 0 told cron all was well.
    emu, tmp = env
    config = ["--config", str(tmp / "bidder.toml")]
    assert cli(env, "tick", *config).exit_code == 0
    emu.advance(600)
    emu.malform("vast:list", {"instances": [], "next_token": None}, times=1)
    emu.malform("vast:show", {"instances": None}, times=1)
    result = cli(env, "tick", *config)
    assert result.exit_code == 1, result.output
    assert "v: unknown: pod " in result.stdout and "no proof that it ended" in result.stdout
    assert result.stderr.strip() == "Error: the state of v's pod is unknown (its line says why); the next tick asks again"
    emu.advance(600)
    assert cli(env, "tick", *config).exit_code == 0


def _outbid_instance(env):
    """The job's instance, launched by a tick, then outbid on its machine: paused by Vast."""
    emu, tmp = env
    assert cli(env, "tick", "--config", str(tmp / "bidder.toml")).exit_code == 0
    [inst] = live(emu)
    emu.advance(300)
    emu.vast.set_competitor(int(emu.vast.market.machine_id[inst.machine]), inst.price + 1.0)
    emu.advance(300)
    return inst


def test_a_paused_instance_of_a_job_taken_out_of_bidder_toml_is_named_with_how_to_end_it(env):
    _, tmp = env
    inst = _outbid_instance(env)
    (tmp / "bidder.toml").write_text(CONFIG.replace("[jobs.v]", "[jobs.w]"))  # job v taken out
    result = cli(env, "tick", "--config", str(tmp / "bidder.toml"))
    assert result.exit_code == 0, result.output
    assert (f"unmanaged: pod {inst.id} (job v) is paused (outbid), resumes by itself and bills its disk meanwhile, "
            f"but its job is not in {tmp / 'bidder.toml'}: stop it with `bidder stop {inst.id} --terminate`") \
        in result.output, result.output


def test_pods_shows_an_outbid_instance_as_paused_not_exited(env):
    inst = _outbid_instance(env)
    table = cli(env, "pods", "--refresh")
    assert table.exit_code == 0, table.output
    [line] = [row for row in table.output.splitlines() if row.startswith(str(inst.id))]
    assert " PAUSED " in line and "EXITED" not in line  # EXITED read as stopped: it resumes and bills by itself
    [pod] = json.loads(cli(env, "pods", "--format", "json", apis=False).output)
    assert (pod["status"], pod["state"]) == ("EXITED", "active")  # for scripts, the market's status
    assert cli(env, "stop", str(inst.id)).exit_code == 0
    [line] = [row for row in cli(env, "pods", apis=False).output.splitlines() if row.startswith(str(inst.id))]
    assert " EXITED " in line  # stopped by bidder: not paused


def test_tick_dry_run_and_jobs_stop_on_vast(env):
    emu, tmp = env
    config = ["--config", str(tmp / "bidder.toml")]
    dry = cli(env, "tick", *config, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "[dry run] v: dry_run: would launch: spot RTX 4090 (" in dry.output and live(emu) == []
    # The market and the bid are on the line (as in --log): "spot RTX 4090 (VERIFIED, vast) bid $0.1234/GPU-h x 1 GPU"
    shown = re.search(r"would launch: spot RTX 4090 \(\w+, vast\) bid \$(\d\.\d{4})/GPU-h x 1 GPU = \$\d\.\d{4}/h "
                      r"\+ \$0\.\d{3}/h storage \((\w+)\): (\{.*\}) \(not sent: dry run\)", dry.output)
    assert shown, dry.output
    request = json.loads(shown.group(3))  # the exact request, key masked, as `launch --dry-run` prints it
    assert shown.group(2) == "create_interruptible" and request["method"] == "PUT"
    assert request["headers"]["Authorization"] == "Bearer ***" and TEST_API_KEY not in dry.output
    assert request["body"]["price"] == pytest.approx(float(shown.group(1)), abs=1e-4)  # 1 GPU: price = bid
    assert cli(env, "tick", *config).exit_code == 0
    [inst] = live(emu)
    emu.advance(600)
    stopped = cli(env, "jobs", "stop", "v", *config)
    assert stopped.exit_code == 0, stopped.output
    assert f"v: finished; stop pod {inst.id}" in stopped.output
    assert inst.intended == "stopped" and not inst.was_running  # on_finish = stop: its disk kept
    again = cli(env, "tick", *config)
    assert "v: finished" in again.output and inst.intended == "stopped"
    # Deleting the finished job's kept disk leaves the job finished (it became "held", waiting for a
    # `jobs start` that would run it again).
    deleted = cli(env, "stop", str(inst.id), "--terminate")
    assert deleted.exit_code == 0, deleted.output
    assert f"terminated pod {inst.id} on vast (job v stays finished)" in deleted.output and live(emu) == []
    listing = cli(env, "jobs", *config, "--format", "json", apis=False)
    assert json.loads(listing.output)[0]["state"] == "finished", listing.output


def test_a_tick_whose_vast_key_is_refused_exits_1_once_the_job_has_an_instance(env):
    # It exited 0 ("v: unknown ..."): a wrong key in cron's environment left the instance unwatched,
    # its budget and hours unkept, and nobody was mailed.
    emu, tmp = env
    config = ["--config", str(tmp / "bidder.toml")]
    assert cli(env, "tick", *config).exit_code == 0
    [inst] = live(emu)
    emu.advance(600)
    args = ["tick", *config, "--db", str(tmp / "bidder.db"), "--api-url", emu.url, "--vast-url", emu.vast_url,
            "--now", to_iso(emu.now)]
    wrong = CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": "wrong-key"}).invoke(main, args)
    assert wrong.exit_code == 1, wrong.output
    assert "v: unknown: the vast pod list could not be read" in wrong.output
    last = wrong.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Vast refused the key (HTTP 401)" in last and "check VAST_API_KEY" in last
    assert len(wrong.stderr.strip().splitlines()) == 2  # the price warning, then the one Error line
    assert "wrong-key" not in wrong.output + wrong.stderr and live(emu) == [inst]


def test_tick_with_a_vast_key_alone_runs_vast_jobs(env):
    emu, tmp = env
    keys = {"RUNPOD_API_KEY": "", "VAST_API_KEY": TEST_API_KEY}
    args = ["tick", "--config", str(tmp / "bidder.toml"), "--db", str(tmp / "bidder.db"), "--api-url", emu.url,
            "--vast-url", emu.vast_url, "--now", to_iso(emu.now)]
    result = CliRunner(env=keys).invoke(main, args)
    assert result.exit_code == 0, result.output
    with Store.open(tmp / "bidder.db") as store:
        name = named(store, "bidder-v", 1)
    assert f"v: running: launched {name} on RTX 4090 (" in result.output and len(live(emu)) == 1
    with Store.open(tmp / "bidder.db") as store:
        assert {c["market"] for c in store.collections() if c["ts"] == store.collections()[-1]["ts"]} == {"vast"}


def test_a_budget_stopped_jobs_kept_storage_past_its_budget_ends_the_tick_with_exit_1(env):
    # Stopped at its budget, the job keeps its instance (its disk) stopped, and Vast bills the storage on:
    # the spend passed the budget tick after tick, each exiting 0, and cron never told anyone.
    emu, tmp = env
    config = ["--config", str(tmp / "bidder.toml")]
    assert cli(env, "tick", *config).exit_code == 0
    [inst] = live(emu)
    emu.advance(1800)
    assert cli(env, "tick", *config).exit_code == 0
    with Store.open(tmp / "bidder.db") as store:
        spent = store.job_state("v")["spent"]
    budget = round(spent + 0.01, 2)
    (tmp / "bidder.toml").write_text(CONFIG.replace("disk = 20", f"disk = 20\nbudget = {budget}"))
    emu.advance(600)
    stopped = cli(env, "tick", *config)
    assert stopped.exit_code == 0 and "v: budget_stopped: " in stopped.output, stopped.output
    assert not inst.destroyed and inst.intended == "stopped"
    over = None
    for _ in range(40):  # the disk's storage alone, a cent and more
        emu.advance(3600)
        over = cli(env, "tick", *config)
        if over.exit_code != 0:
            break
    assert over is not None and over.exit_code == 1, over.output
    assert over.stderr.strip().splitlines()[-1].startswith(
        "Error: job v has spent $") and (f"over its budget of ${budget:.2f}, and its kept instance's storage bills on: "
                                          "`bidder stop --job v --terminate` deletes it (and its disk)") in over.stderr
    ended = cli(env, "stop", "--job", "v", "--terminate")
    assert ended.exit_code == 0 and inst.destroyed, ended.output
    [row] = json.loads(cli(env, "pods", "--all", "--format", "json", apis=False).output)
    assert row["status"] == "TERMINATED" and row["cost_per_hr"] is None  # (it showed its storage rate on)
    # Its uptime is its total running time, destroyed too (one destroyed instance showed it, another "-").
    assert row["uptime_h"] == pytest.approx(inst.running_s / 3600, abs=0.1) and row["uptime_h"] > 0, row
    emu.advance(600)
    assert cli(env, "tick", *config).exit_code == 0


def test_a_finished_jobs_kept_storage_past_its_budget_ends_the_tick_with_exit_1_and_was_foretold(env):
    # on_finish = "stop" keeps the finished job's instance (its disk) stopped, and Vast bills the storage on:
    # the spend passed the budget ($12 -> $14.05 in a cron week) while every tick said "finished", exit 0.
    emu, tmp = env
    finite = CONFIG.replace("hours = 10", "hours = 0.5").replace("disk = 20", 'disk = 200\non_finish = "stop"')
    (tmp / "bidder.toml").write_text(finite + "budget = 2\n")
    config = ["--config", str(tmp / "bidder.toml")]
    for _ in range(12):
        done = cli(env, "tick", *config)
        assert done.exit_code == 0, done.output + done.stderr
        if "v: finished: " in done.output:
            break
        emu.advance(600)
    [inst] = live(emu)
    assert inst.intended == "stopped"
    with Store.open(tmp / "bidder.db") as store:
        spent = store.job_state("v")["spent"]
        poll = store.last_observation(str(inst.id))
    rate = poll["storage_per_hr"]
    # Said before the crossing: when the storage passes the budget at this rate.
    at = to_iso(poll["ts"] + timedelta(hours=(2 - spent) / rate))
    assert (f"at ${rate:.3f}/h of storage its spend passes its budget of $2.00 in about ") in done.output
    assert (f"(at {at}) unless `bidder stop --job v --terminate` deletes it (and its disk)") in done.output, done.output
    budget = round(spent + 0.05, 2)  # (lowered: the next hours of storage pass it)
    (tmp / "bidder.toml").write_text(finite + f"budget = {budget}\n")
    before = None
    for _ in range(40):
        emu.advance(900)
        over = cli(env, "tick", *config)
        if over.exit_code != 0:
            break
        before = over
    assert over.exit_code == 1 and before is not None and "v: finished: " in before.output, over.output
    with Store.open(tmp / "bidder.db") as store:
        now_spent = store.job_state("v")["spent"]
    assert now_spent > budget and now_spent - budget < rate / 4 + 0.005  # (within a tick's storage of the crossing)
    assert "v: finished: " in over.output and "over its budget: its kept instance bills storage" in over.output
    [line] = over.stderr.strip().splitlines()
    assert line == (f"Error: job v has spent ${now_spent:.2f}, over its budget of ${budget:.2f}, and its kept instance "
                    f"{inst.id} bills ${rate:.3f}/h of storage on: `bidder stop --job v --terminate` deletes it (and "
                    "its disk)"), line
    assert not inst.destroyed  # (the user asked to keep it: theirs to delete)
    listing = cli(env, "jobs", *config, apis=False)
    assert listing.exit_code == 0 and listing.output.splitlines()[-1].endswith(
        f"; its spend, ${now_spent:.2f}, is over its budget of ${budget:.2f}: `bidder stop --job v --terminate` "
        "deletes it (and its disk)"), listing.output
    ended = cli(env, "stop", "--job", "v", "--terminate")
    assert ended.exit_code == 0 and inst.destroyed, ended.output
    emu.advance(600)
    after = cli(env, "tick", *config)
    assert after.exit_code == 0 and "v: finished" in after.output, after.output + after.stderr


def test_a_pod_list_that_cannot_be_read_is_one_cause_said_once_for_every_job_it_leaves_unknown(env):
    """A timed-out listing made each job's line "job v cannot run: the vast pod list could not be read
    (... the request may have been executed)", the whole cause again for every job on the Error line:
    "cannot run" is for what the user must change, and a read is never half-executed."""
    emu, tmp = env
    (tmp / "bidder.toml").write_text(CONFIG + CONFIG.replace("[jobs.v]", "[jobs.w]"))
    config = ["--config", str(tmp / "bidder.toml")]
    assert cli(env, "tick", *config).exit_code == 0
    assert len(live(emu)) == 2
    emu.advance(600)
    emu.malform("vast:list", {"error": "server_error", "msg": "try again later"}, status=500, times=None)
    result = cli(env, "tick", *config, "--retries", "1")
    emu.clear_malformed()
    assert result.exit_code == 1, result.output + result.stderr
    assert "v: unknown: the vast pod list could not be read" in result.stdout, result.stdout + result.stderr
    assert "w: unknown: the vast pod list could not be read" in result.stdout, result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.endswith("the state of the pods of v and w is unknown (their lines say why); the next tick asks "
                          "again"), error
    assert "cannot run" not in error and "may have been executed" not in result.output + result.stderr


def test_tick_says_once_which_cards_a_gpu_name_names_counting_one_card_on_two_markets_once(env):
    """`bidder tick` bought whichever card `gpu = ["A100"]` named, with no word of it (`launch` says it);
    and the note counted RunPod's "A100 SXM" and Vast's "A100 SXM4", one card, as two types."""
    emu, tmp = env
    (tmp / "bidder.toml").write_text('[jobs.big]\ngpu = ["A100"]\nkeep_running = true\ntolerance = "none"\n'
                                     'image = "img"\n')
    config = ["--config", str(tmp / "bidder.toml")]
    first = cli(env, "tick", *config)
    assert first.exit_code == 0, first.output
    [line] = [x for x in first.output.splitlines() if x.startswith("big: ")]
    assert ("; note: 'A100' names 2 GPU types: A100 SXM4 / A100 SXM, A100 PCIe; the job accepts each (give a full "
            "name to choose one) (spent $") in line, line
    emu.advance(300)
    again = cli(env, "tick", *config)  # said once, not in every tick's line
    assert again.exit_code == 0 and "big: running: " in again.output and "names" not in again.output, again.output
