"""One market's key missing, through the real CLI against the emulator: what needs no key is done
without one (Vast's offer search), what needs the missing key is refused in one line naming it
before any request, and nothing is sent to RunPod without RunPod's key when Vast's is set (nor by a
tick with no key at all). RunPod's
URL is a canned server on 127.0.0.1 that records every request it gets (it must get none)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from client_helpers import one_line_error
from executor_helpers import RTX4090
from two_markets import runpod_live, vast_live
from vast_helpers import seed_vast_history

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import Store
from bidder.units import to_iso

NO_KEYS = {"RUNPOD_API_KEY": None, "VAST_API_KEY": None}
VAST_ONLY = {"RUNPOD_API_KEY": None, "VAST_API_KEY": TEST_API_KEY}


class _Record(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = answer


@pytest.fixture
def runpod_trap() -> Iterator[ThreadingHTTPServer]:
    """RunPod's URL: a server that records every request (any method) and answers 502."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Record)
    server.seen = []  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/graphql"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def run(emu, tmp, keys: dict, *args: str, api_url: str | None = None, now: bool = False):
    urls = ["--api-url", api_url or emu.url, "--vast-url", emu.vast_url, *(["--now", to_iso(emu.now)] if now else [])]
    env = {"HOME": str(tmp), "XDG_CONFIG_HOME": None, "RUNPOD_API_URL": None, "VAST_URL": None, **keys}
    return CliRunner(env=env).invoke(main, [*args, "--db", str(tmp / "bidder.db"), *urls])


# -- collect ------------------------------------------------------------------------------------------
def test_collect_market_vast_without_a_key_collects_vasts_public_offers(emulator, tmp_path, runpod_trap):
    result = run(emulator, tmp_path, NO_KEYS, "collect", "--market", "vast", api_url=runpod_trap.url)
    assert result.exit_code == 0, result.output + result.stderr
    assert "vast: stored " in result.output and result.stderr == ""
    with Store.open(tmp_path / "bidder.db") as store:
        assert store.last_collection_ts(market="vast") == emulator.now
        assert store.market_names() == ["vast"]
    assert runpod_trap.seen == []


def test_collect_without_a_vast_key_on_a_database_of_vast_collections_warns(emulator, tmp_path):
    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator, days=0.1)
    emulator.advance(300)
    result = run(emulator, tmp_path, NO_KEYS, "collect")
    assert result.exit_code == 0, result.output + result.stderr
    assert "stored " in result.output  # RunPod's prices, as before
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: ") and "VAST_API_KEY" in warning and "--market vast" in warning
    assert "vast_api_key in ~/.config/bidder/config.toml" in warning  # both places the key may live
    with_key = run(emulator, tmp_path, VAST_ONLY, "collect")  # the key back: both said nothing
    assert with_key.exit_code == 0 and with_key.stderr == "", with_key.stderr
    assert "vast: stored " in with_key.output


# -- tick ---------------------------------------------------------------------------------------------
VAST_JOB = """
[jobs.v]
gpu = ["RTX 4090"]
market = "vast"
hours = 2
max_price = 0.5
image = "pytorch/pytorch"
"""


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_tick_of_vast_jobs_without_any_key_says_to_set_vast_api_key_and_asks_runpod_nothing(
        emulator, tmp_path, runpod_trap, dry_run):
    (tmp_path / "bidder.toml").write_text(VAST_JOB + VAST_JOB.replace("jobs.v", "jobs.w"))
    Store.open(tmp_path / "bidder.db").close()  # (a dry run refuses a database that is not there)
    result = run(emulator, tmp_path, NO_KEYS, "tick", "--config", str(tmp_path / "bidder.toml"),
                 *(["--dry-run"] if dry_run else []), api_url=runpod_trap.url, now=True)
    prefix = "[dry run] " if dry_run else ""
    for job in ("v", "w"):
        assert f"{prefix}{job}: error: market = 'vast', and this tick has no Vast key: set VAST_API_KEY" in result.output
    error = one_line_error(result)
    assert error.startswith("Error: job v cannot run: market = 'vast', and this tick has no Vast key"), error
    assert runpod_trap.seen == [] and emulator.vast.instances == {}



NO_KEY_LINES = {  # what a tick with no key at all says of a job of each market
    "vast": "market = 'vast', and this tick has no Vast key: set VAST_API_KEY (or vast_api_key in "
            "~/.config/bidder/config.toml); nothing is rented for it",
    "runpod": "market = 'runpod', and this tick has no RunPod key: set RUNPOD_API_KEY (or api_key in "
              "~/.config/bidder/config.toml); nothing is rented for it",
    "any": "market = 'any', and this tick has no key for either market: set RUNPOD_API_KEY or VAST_API_KEY (or "
           "api_key or vast_api_key in ~/.config/bidder/config.toml); nothing is rented for it",
}


@pytest.mark.parametrize("markets", [("vast", "any"), ("runpod", "vast"), ("any",), ("runpod",)])
def test_a_tick_without_any_key_says_each_jobs_key_and_asks_no_market(emulator, tmp_path, runpod_trap, markets):
    # (A Vast job beside an `any` one sent 4 requests to RunPod and failed at its pod list, "myself: ...";
    # so did a RunPod job's tick, whose RunPod prices needed no key but whose pods did.)
    jobs = "".join(VAST_JOB.replace("jobs.v", f"jobs.j{i}").replace("'vast'", repr(m)).replace('"vast"', f'"{m}"')
                   for i, m in enumerate(markets))
    (tmp_path / "bidder.toml").write_text(jobs)
    result = run(emulator, tmp_path, NO_KEYS, "tick", "--config", str(tmp_path / "bidder.toml"), api_url=runpod_trap.url)
    assert result.stdout.splitlines() == [f"j{i}: error: {NO_KEY_LINES[m]} (spent $0.00, 0.00 h done)"
                                          for i, m in enumerate(markets)]
    assert one_line_error(result) == "Error: " + "; ".join(f"job j{i} cannot run: {NO_KEY_LINES[m]}"
                                                           for i, m in enumerate(markets))
    assert runpod_trap.seen == [] and emulator.vast.instances == {}


def test_a_tick_without_any_key_says_the_jobs_running_instance_is_left_unwatched(emulator, tmp_path, runpod_trap):
    # ("nothing is rented for it" was said of a job whose on-demand instance ran on, billing, unwatched.)
    (tmp_path / "bidder.toml").write_text(VAST_JOB + 'tolerance = "none"\n')
    config = ["tick", "--config", str(tmp_path / "bidder.toml")]
    rented = run(emulator, tmp_path, VAST_ONLY, *config, api_url=runpod_trap.url)
    assert rented.exit_code == 0, rented.output + rented.stderr
    [instance] = emulator.vast.instances
    result = run(emulator, tmp_path, NO_KEYS, *config, api_url=runpod_trap.url)
    said = (f"market = 'vast', and this tick has no Vast key: set VAST_API_KEY (or vast_api_key in "
            f"~/.config/bidder/config.toml); its pod {instance} on vast is left as it is, unwatched, and goes on billing")
    assert result.stdout.startswith(f"v: error: {said} (spent $"), result.stdout
    assert one_line_error(result) == f"Error: job v cannot run: {said}"
    assert runpod_trap.seen == [] and not emulator.vast.instances[instance].destroyed


# -- launch -------------------------------------------------------------------------------------------
LAUNCH = ["launch", "--gpu", "4090", "--hours", "2", "--max-price", "0.5", "--image", "x"]


@pytest.mark.parametrize(("given", "said"), [
    (["--ports", "8888/http,22/tcp"], "--ports is RunPod's, and no RunPod key is set (RUNPOD_API_KEY): drop it "
                                      "to launch on Vast"),
    (["--network-volume", "nv1", "--template-id", "t1"], "--template-id, --network-volume are RunPod's, and no "
                                                         "RunPod key is set (RUNPOD_API_KEY): drop them"),
    (["--market", "runpod"], "--market runpod, and no RunPod key is set (RUNPOD_API_KEY): set it, or use --market vast"),
    (["--cloud", "secure"], "--cloud secure is a RunPod cloud, and no RunPod key is set (RUNPOD_API_KEY): give "
                            "--cloud verified, unverified or any"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_launch_only_runpod_could_serve_with_vasts_key_alone_is_one_line_and_sends_nothing(
        emulator, tmp_path, runpod_trap, given, said, dry_run):
    result = run(emulator, tmp_path, VAST_ONLY, *LAUNCH, *given, "--dry-run" if dry_run else "--yes",
                 api_url=runpod_trap.url)
    assert one_line_error(result).startswith(f"Error: {said}")
    assert runpod_trap.seen == [] and emulator.vast.instances == {}


def test_a_launch_with_vasts_key_alone_plans_on_vast_and_asks_runpod_nothing(emulator, tmp_path, runpod_trap):
    result = run(emulator, tmp_path, VAST_ONLY, *LAUNCH, "--cloud", "verified", "--dry-run", api_url=runpod_trap.url)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("Plan: RTX 4090 (VERIFIED, vast) ")
    assert runpod_trap.seen == []


# -- recommend ----------------------------------------------------------------------------------------
VAST_HOW = ("collect them with `bidder collect --market runpod` (RunPod's prices need no key; no RunPod key is set, "
            "RUNPOD_API_KEY, which renting there needs)")


@pytest.mark.parametrize(("keys", "how", "refresh"), [
    (VAST_ONLY, VAST_HOW, False),
    (VAST_ONLY, VAST_HOW, True),  # (its refresh asks Vast alone)
    (NO_KEYS, "collect them (`bidder collect`: RunPod's prices need no key)", False),
])
@pytest.mark.parametrize("cloud", ["secure", "community"])
def test_recommend_of_a_runpod_cloud_on_vasts_prices_alone_says_runpod_has_none(
        emulator, tmp_path, runpod_trap, keys, how, refresh, cloud):
    # (It said "no current quote for RTX 4090 ... in cloud SECURE; collect prices first", though Vast's were.)
    with Store.open(tmp_path / "bidder.db") as store:
        seed_vast_history(store, emulator, days=0.5)
    result = run(emulator, tmp_path, keys, "recommend", "--gpu", "4090", "--hours", "4", "--cloud", cloud,
                 *(["--refresh"] if refresh else []), api_url=runpod_trap.url)
    assert one_line_error(result) == (
        f"Error: --cloud {cloud} is a RunPod cloud, and {tmp_path / 'bidder.db'} holds no RunPod prices (Vast's "
        f"instances are VERIFIED or UNVERIFIED): {how}, or give --cloud verified, unverified or any to decide on Vast's")
    assert runpod_trap.seen == []


# -- stop, jobs stop, pods --refresh: a ledger with a pod on each market, then Vast's key alone ---------
BOTH_KEYS = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY}
TWO_JOBS = f"""
[jobs.r]
gpu = ["{RTX4090}"]
market = "runpod"
hours = 20
tolerance = "none"
image = "runpod/pytorch:latest"
""" + VAST_JOB.replace('max_price = 0.5', 'tolerance = "none"')


@pytest.fixture
def two_pods(both, tmp_path):
    """The `both` ledger after a tick with both keys: job r's on-demand pod on RunPod, job v's on Vast."""
    env, _ = both
    (tmp_path / "bidder.toml").write_text(TWO_JOBS)
    ticked = run(env.emu, tmp_path, BOTH_KEYS, "tick", "--config", str(tmp_path / "bidder.toml"), now=True)
    assert ticked.exit_code == 0, ticked.output + ticked.stderr
    [pod], [instance] = runpod_live(env.emu), vast_live(env.emu)
    env.emu.advance(600)
    return env, pod, instance


def no_runpod_key(pod_id: str, act: str) -> str:
    return (f"Error: pod {pod_id} is on runpod, and no RunPod key is set: set RUNPOD_API_KEY (or api_key in "
            f"~/.config/bidder/config.toml) to {act} it; nothing was sent")


@pytest.mark.parametrize(("extra", "act"), [((), "stop"), (("--dry-run",), "stop"), (("--terminate",), "terminate")])
def test_stop_of_a_runpod_pod_with_vasts_key_alone_is_one_line_and_sends_nothing(two_pods, runpod_trap, extra, act):
    # (It read the pod and the clock keyless from RunPod and failed at its 401: "pod: You must be authenticated".)
    env, pod, _ = two_pods
    result = run(env.emu, env.tmp, VAST_ONLY, "stop", pod.id, *extra, api_url=runpod_trap.url)
    assert one_line_error(result) == no_runpod_key(pod.id, act)
    assert runpod_trap.seen == [] and pod.desired_status == "RUNNING"
    assert env.store.pod(pod.id)["state"] == "active"


def test_jobs_stop_of_a_runpod_job_with_vasts_key_alone_is_one_line_and_records_nothing(two_pods, runpod_trap):
    env, pod, _ = two_pods
    result = run(env.emu, env.tmp, VAST_ONLY, "jobs", "--config", str(env.tmp / "bidder.toml"), "stop", "r",
                 api_url=runpod_trap.url)
    assert one_line_error(result) == no_runpod_key(pod.id, "stop")
    assert runpod_trap.seen == [] and pod.desired_status == "RUNNING"
    assert not (env.store.job_state("r") or {}).get("stop_requested")


def test_pods_refresh_with_vasts_key_alone_polls_vast_and_lists_runpods_pods_as_last_seen(two_pods, runpod_trap):
    # (It asked RunPod's pod list keyless and failed, exit 1: "myself: ... give an API key (RUNPOD_API_KEY)".)
    env, pod, instance = two_pods
    polls = len(env.store.observations(str(instance.id)))
    result = run(env.emu, env.tmp, VAST_ONLY, "pods", "--refresh", api_url=runpod_trap.url)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == ("warning: the pods on runpod were not polled: no RunPod key is set (RUNPOD_API_KEY, or "
                             "api_key in ~/.config/bidder/config.toml); they are listed as last seen\n")
    assert {line.split()[0] for line in result.stdout.splitlines()[2:]} == {pod.id, str(instance.id)}
    assert runpod_trap.seen == [] and len(env.store.observations(str(instance.id))) == polls + 1


def test_pods_refresh_with_runpods_key_alone_names_both_places_vasts_key_may_live(two_pods):
    # (It named VAST_API_KEY alone; a user whose key is in config.toml looked for a variable to set.)
    env, pod, instance = two_pods
    result = run(env.emu, env.tmp, {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": None}, "pods", "--refresh")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == ("warning: the pods on vast were not polled: no Vast key is set (VAST_API_KEY, or "
                             "vast_api_key in ~/.config/bidder/config.toml); they are listed as last seen\n")
    assert {line.split()[0] for line in result.stdout.splitlines()[2:]} == {pod.id, str(instance.id)}
