"""Which stopped RunPod pods bill, known from each pod's volume (`pods.volume_in_gb`, schema 7): through
the real CLI against the emulator over HTTP. RunPod bills a stopped pod's volume disk and nothing else,
so one launched with --volume is listed as billing it, one without is not; `pods --refresh` polls the
stopped pods too, drops one deleted in RunPod's console on RunPod's "not found" alone, and keeps one
whose answer cannot be read. A ledger from before volumes were recorded keeps every row, its pods'
volume unknown and worded as before."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

from click.testing import CliRunner
from executor_helpers import A6000

from bidder.cli import main
from bidder.sim import TEST_API_KEY
from bidder.store import SCHEMA_VERSION, Store
from bidder.store.schema import MIGRATIONS
from bidder.units import to_iso

UNKNOWN_LINE = "stopped RunPod pods keep their volume disk, which RunPod bills while they are stopped"


def cli(env, *args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, [*args])


def db(env) -> list[str]:
    return ["--db", str(env.tmp / "bidder.db")]


def api(env) -> list[str]:
    return [*db(env), "--api-url", env.emu.url, "--now", to_iso(env.emu.now)]


def stopped_launch(env, *extra: str):
    """The emulator's pod of a `bidder launch`, stopped by `bidder stop` ten minutes later."""
    before = set(env.emu.world.pods)
    result = cli(env, "launch", "--gpu", A6000, "--tolerance", "none", "--image", "img", "--yes", *api(env), *extra)
    assert result.exit_code == 0, result.output + result.stderr
    [pod_id] = set(env.emu.world.pods) - before
    env.emu.advance(600)
    stop = cli(env, "stop", pod_id, *api(env))
    assert stop.exit_code == 0, stop.output + stop.stderr
    return env.emu.world.pods[pod_id], stop.output


def listed(env, *extra: str) -> dict[str, dict]:
    result = cli(env, "pods", "--format", "json", *extra, *db(env))
    assert result.exit_code == 0, result.output + result.stderr
    return {r["pod"]: r for r in json.loads(result.output)}


def test_a_stopped_pod_with_a_volume_is_listed_as_billing_it(env):
    pod, said = stopped_launch(env, "--volume", "20")
    assert pod.desired_status == "EXITED"
    assert said.endswith(f"RunPod bills its 20 GB volume while it is stopped: `bidder stop {pod.id} --terminate` "
                         "deletes it with its volume\n"), said
    with Store.open(env.tmp / "bidder.db") as store:
        assert store.pod(pod.id)["volume_in_gb"] == 20
    # Without --all: it bills (it said "no managed pods billing"), with its volume and how to delete it.
    table = cli(env, "pods", *db(env))
    assert table.exit_code == 0, table.output + table.stderr
    lines = table.output.splitlines()
    assert pod.id in lines[2] and "EXITED" in lines[2], table.output
    assert lines[-1] == (f"{pod.id}: stopped, it keeps its 20 GB volume, which RunPod bills while it is stopped: "
                         f"`bidder stop {pod.id} --terminate` deletes it")
    assert UNKNOWN_LINE not in table.output
    row = listed(env)[pod.id]
    assert (row["volume_gb"], row["status"], row["state"], row["cost_per_hr"]) == (20, "EXITED", "stopped", None)
    # Deleted, it bills nothing: not listed, no line.
    assert cli(env, "stop", pod.id, "--terminate", *api(env)).exit_code == 0
    assert cli(env, "pods", *db(env)).output == "no managed pods billing\n"
    assert "bills while it is stopped" not in cli(env, "pods", "--all", *db(env)).output


def test_a_stopped_pod_without_a_volume_is_not_called_billing(env):
    pod, said = stopped_launch(env)
    assert said.endswith(f"it has no volume, so it bills nothing while stopped (`bidder stop {pod.id} --terminate` "
                         "deletes it)\n"), said
    with Store.open(env.tmp / "bidder.db") as store:
        assert store.pod(pod.id)["volume_in_gb"] == 0  # what bidder sent: RunPod's answer says null here
    assert cli(env, "pods", *db(env)).output == "no managed pods billing\n"
    everything = cli(env, "pods", "--all", *db(env))
    assert everything.exit_code == 0, everything.output + everything.stderr
    assert pod.id in everything.output and "bill" not in everything.output, everything.output
    assert listed(env, "--all")[pod.id]["volume_gb"] == 0


def test_refresh_drops_a_stopped_pod_deleted_behind_bidders_back(env):
    pod, _ = stopped_launch(env, "--volume", "20")
    env.client.terminate(pod.id)  # in RunPod's console, say
    env.emu.advance(600)
    assert listed(env, "--all")[pod.id]["state"] == "stopped"  # the ledger alone does not know yet
    refreshed = cli(env, "pods", "--refresh", *api(env))
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    assert refreshed.output == "no managed pods billing\n"
    row = listed(env, "--all")[pod.id]
    assert (row["state"], row["status"]) == ("gone", "TERMINATED"), row


def test_refresh_keeps_a_stopped_pod_whose_answer_cannot_be_read(env):
    pod, _ = stopped_launch(env, "--volume", "20")
    # An empty pod list proves nothing, and the pod's own answer is garbage: neither is RunPod's "not found".
    env.emu.malform("myself", lambda payload: {"data": {"myself": {**payload["data"]["myself"], "pods": []}}},
                    times=None)
    env.emu.malform("pod", {"data": {"pod": {"id": pod.id, "desiredStatus": "NOT A STATUS"}}}, times=None)
    env.emu.advance(600)
    refreshed = cli(env, "pods", "--refresh", *api(env))
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    [warning] = refreshed.stderr.splitlines()
    assert warning.startswith(f"warning: pod {pod.id} could not be read (") and warning.endswith(
        "): listed as last seen"), warning
    assert pod.id in refreshed.output and "20 GB volume" in refreshed.output, refreshed.output
    assert listed(env, "--all")[pod.id]["state"] == "stopped"
    # An empty list with the pod still there by id: read, not dropped.
    env.emu.clear_malformed()
    env.emu.malform("myself", lambda payload: {"data": {"myself": {**payload["data"]["myself"], "pods": []}}},
                    times=None)
    again = cli(env, "pods", "--refresh", *api(env))
    assert again.exit_code == 0 and again.stderr == "", again.output + again.stderr
    assert listed(env, "--all")[pod.id]["state"] == "stopped"


def with_volume(pod_id: str, value):
    """A `myself` answer whose pod `pod_id` says `volumeInGb: value`."""
    def spoil(payload):
        me = payload["data"]["myself"]
        pods = [{**p, "volumeInGb": value} if p["id"] == pod_id else p for p in me["pods"]]
        return {"data": {"myself": {**me, "pods": pods}}}
    return spoil


def test_refresh_takes_the_volume_runpods_answer_gives_and_no_unreadable_one(env):
    pod, _ = stopped_launch(env)
    # A volume bidder cannot read costs the pod nothing: polled as ever, its volume as it was.
    env.emu.malform("myself", with_volume(pod.id, "lots"))
    refreshed = cli(env, "pods", "--refresh", *api(env))
    assert refreshed.exit_code == 0 and refreshed.stderr == "", refreshed.output + refreshed.stderr
    assert listed(env, "--all")[pod.id]["volume_gb"] == 0
    # RunPod's own answer wins over what bidder sent (a template may bring a volume of its own).
    env.emu.malform("myself", with_volume(pod.id, 5))
    refreshed = cli(env, "pods", "--refresh", *api(env))
    assert refreshed.exit_code == 0, refreshed.output + refreshed.stderr
    assert f"{pod.id}: stopped, it keeps its 5 GB volume" in refreshed.output, refreshed.output


def make_v6(path) -> None:
    """A file exactly as the version-6 bidder left it, with a stopped RunPod pod of a launch and its poll."""
    conn = sqlite3.connect(path)
    for version in range(1, 7):
        conn.executescript(MIGRATIONS[version])
    conn.executescript("""
INSERT INTO pods (pod_id, job, name, gpu_type_id, cloud, gpu_count, kind, created, state, desired_status, last_seen,
    market) VALUES ('oldpod', 'bidder-launch', 'bidder-launch-1-abcde', 'NVIDIA RTX A6000', 'COMMUNITY', 1,
    'on_demand', '2026-01-01T00:00:00Z', 'stopped', 'EXITED', '2026-01-01T01:00:00Z', 'runpod');
INSERT INTO pod_observations (pod_id, ts, desired_status, cost_per_hr, uptime_seconds)
    VALUES ('oldpod', '2026-01-01T01:00:00Z', 'EXITED', 0.49, NULL);
INSERT INTO jobs (name, extra) VALUES ('bidder-launch', '{"launched_by": "bidder launch"}');
PRAGMA user_version = 6;
""")
    conn.close()


def test_a_version_6_ledger_keeps_its_pods_and_their_volume_is_unknown(tmp_path):
    path = tmp_path / "bidder.db"
    make_v6(path)
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 7
        [row] = store.managed_pods()
        assert (row["pod_id"], row["state"], row["desired_status"], row["volume_in_gb"]) == (
            "oldpod", "stopped", "EXITED", None)
        assert len(store.observations("oldpod")) == 1 and store.is_launch("bidder-launch")
    runner = CliRunner(env={"RUNPOD_API_KEY": ""})
    # Unknown: worded as before (it may bill), listed by --all with the line on how to delete it.
    assert runner.invoke(main, ["pods", "--db", str(path)]).output == (
        "no managed pods billing (use --all for stopped ones: a stopped RunPod pod's volume, if it has one, bills)\n")
    everything = runner.invoke(main, ["pods", "--all", "--db", str(path)])
    assert everything.exit_code == 0, everything.output + everything.stderr
    assert everything.output.splitlines()[-1] == f"{UNKNOWN_LINE}: `bidder stop oldpod --terminate` deletes one"


def _launched_spot_outbid(env, *extra: str) -> str:
    """A `bidder launch` of an A6000 spot pod (`extra`: more options), outbid ten minutes later: its id."""
    before = set(env.emu.world.pods)
    result = cli(env, "launch", "--gpu", A6000, "--cloud", "community", "--tolerance", "high", "--max-price", "0.6",
                 "--image", "img", *extra, "--yes", *api(env))
    assert result.exit_code == 0, result.output + result.stderr
    [pod_id] = set(env.emu.world.pods) - before
    pod = env.emu.world.pods[pod_id]
    assert pod.is_spot, result.output
    env.emu.advance(600)
    env.emu.world.set_floor(A6000, pod.cloud, 0.9)  # over its bid: RunPod stops it
    env.emu.advance(600)
    assert pod.desired_status == "EXITED"
    return pod_id


def test_a_launched_spot_pod_outbid_is_shown_stopped_with_its_volume_not_paused(env):
    # Nothing bids for a `bidder launch`'s pod again (no tick runs a launch): outbid, it showed PAUSED,
    # which says "waits for a tick's new bid", and no line said that its volume bills while it is stopped.
    pod_id = _launched_spot_outbid(env, "--volume", "20")
    table = cli(env, "pods", "--refresh", *api(env))
    assert table.exit_code == 0, table.output + table.stderr
    [line] = [x for x in table.output.splitlines() if x.startswith(pod_id) and "A6000" in x]
    assert " EXITED " in line and "PAUSED" not in line, table.output
    assert (f"{pod_id}: stopped by RunPod and not bid for again, it keeps its 20 GB volume, which RunPod bills while "
            f"it is stopped: `bidder stop {pod_id} --terminate` deletes it") in table.output.splitlines()
    row = listed(env)[pod_id]
    assert (row["status"], row["state"]) == ("EXITED", "active")  # JSON: the market's status, the ledger's state
    # The cost report's pod row says what its job says (the HTML page's jobs: "stopped"), not "paused".
    report = cli(env, "report", "--format", "csv", *db(env), "--now", to_iso(env.emu.now))
    assert report.exit_code == 0, report.output + report.stderr
    [spent] = [r for r in csv.DictReader(io.StringIO(report.output)) if r["pod_id"] == pod_id]
    assert spent["state"] == "stopped", spent


def test_a_launched_spot_pod_outbid_with_no_volume_is_not_listed_as_billing(env):
    # Outbid for good with no volume, it bills nothing, yet plain `bidder pods` ("the managed pods that bill")
    # listed it until `bidder stop` (found by a README audit).
    pod_id = _launched_spot_outbid(env)
    assert cli(env, "pods", "--refresh", *api(env)).exit_code == 0
    billing = cli(env, "pods", *db(env))
    assert billing.exit_code == 0 and pod_id not in billing.output, billing.output
    everything = cli(env, "pods", "--all", *db(env))
    assert pod_id in everything.output, everything.output
