"""The report counts an outbid that RunPod stamped on the very second of the tick that then stopped the
pod (to move the job): against the emulator over HTTP (its exits fall on whole minutes, as ticks do).
The report had taken that stop for the cause of the exit, dropping the interruption the tick counted;
bidder's own stop of a running pod at a tick is still never an interruption."""

from __future__ import annotations

from executor_helpers import A6000, RTX4090, live

from bidder.report.data import pod_track, spend_report

SERVICE = """
[jobs.outbid]
gpu = ["{a}"]
cloud = "community"
keep_running = true
tolerance = "high"
image = "runpod/pytorch:latest"

[jobs.own]
gpu = ["{b}"]
cloud = "secure"
keep_running = true
tolerance = "high"
image = "runpod/pytorch:latest"
"""


def test_an_outbid_stamped_on_the_second_of_bidders_stop_is_an_interruption_and_its_own_stop_is_not(env):
    config = env.config(SERVICE.format(a=A6000, b=A6000))
    for _ in range(100):
        if all(j.state == "running" for j in env.tick(config).jobs):
            break
        env.emu.advance(300)
    pods = {env.store.pod(p.id)["job"]: p for p in live(env)}
    assert sorted(pods) == ["outbid", "own"] and all(p.pod_type == "INTERRUPTABLE" for p in pods.values())
    env.emu.advance(3600)
    assert all(j.state == "running" for j in env.tick(config).jobs)
    env.emu.advance(300)
    env.emu.world.set_floor(A6000, "COMMUNITY", 0.5)  # outbid now: its exit carries the tick's own second
    outbid, own = pods["outbid"], pods["own"]
    assert outbid.desired_status == "EXITED" and outbid.last_status_change.startswith("Exited by Runpod: outbid")
    # bidder.toml now asks for a 4090: this tick moves both jobs, stopping each old pod that second: the
    # outbid one exited already; the other runs (polled RUNNING, then stopped by bidder).
    report = env.tick(env.config(SERVICE.format(a=RTX4090, b=RTX4090)))
    assert all("moved to " in j.message for j in report.jobs), report.jobs
    for job, pod in pods.items():
        [stop] = [a for a in env.store.actions(job) if a["kind"] == "stop"]
        [exit_] = [o for o in env.store.observations(pod.id) if o["desired_status"] == "EXITED"]
        assert stop["pod_id"] == pod.id and exit_["ts"] == stop["ts"] == env.emu.now  # the same second
    assert own.last_status_change.startswith("Exited by User")
    # The tick counted the outbid alone; so does the report, in its tables and its chart.
    assert env.store.job_state("outbid")["interruptions"] == 1 and env.store.job_state("own")["interruptions"] == 0
    counts = {p.pod_id: p.interruptions for p in spend_report(env.store).pods}
    assert counts[outbid.id] == 1 and counts[own.id] == 0, counts
    assert pod_track(env.store, outbid.id).interruptions == (env.emu.now.timestamp(),)
    assert pod_track(env.store, own.id).interruptions == ()
