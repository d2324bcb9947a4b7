"""`bidder sim serve` and `bidder sim trace`, the wall-clock mode, and clean shutdown."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.sim import TEST_API_KEY, Emulator
from bidder.traces import read_trace

SERVE = [sys.executable, "-c", "from bidder.cli import main; main()", "sim", "serve"]


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*SERVE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _finish(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def test_serve_prints_the_url_first_and_answers():
    proc, first = _serve("--port", "0", "--seed", "3")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/graphql", first)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"API key: {TEST_API_KEY}"
        response = httpx.post(first, json={"query": "{ myself { id } gpuTypes { id } }"},
                              headers={"Authorization": f"Bearer {TEST_API_KEY}"}, timeout=10)
        assert response.status_code == 200
        assert response.json()["data"]["myself"]["id"].startswith("user_")
        assert len(response.json()["data"]["gpuTypes"]) >= 12
        moved = httpx.post(first.removesuffix("/graphql") + "/sim/advance", json={"seconds": 3600}, timeout=10)
        assert moved.json() == {"now": "2026-01-01T01:00:00Z"}
    finally:
        rest = _finish(proc)
    assert proc.returncode == 0
    assert "Stopped at virtual time 2026-01-01T01:00:00Z." in rest


def test_serve_with_own_key_and_no_spot():
    proc, url = _serve("--api-key", "my-local-key", "--no-spot")
    try:
        good = httpx.post(url, json={"query": "{ myself { id } }"}, headers={"Authorization": "Bearer my-local-key"},
                          timeout=10)
        assert good.json()["data"]["myself"] is not None
        bad = httpx.post(url, json={"query": "{ myself { id } }"},
                         headers={"Authorization": f"Bearer {TEST_API_KEY}"}, timeout=10)
        assert bad.status_code == 401
        spot = httpx.post(url, json={"query": "mutation { podRentInterruptable(input: {bidPerGpu: 1}) { id } }"},
                          headers={"Authorization": "Bearer my-local-key"}, timeout=10)
        assert spot.status_code == 400
    finally:
        _finish(proc)


@pytest.mark.parametrize(("args", "needle"), [
    (["--faults", "boom=1"], "Invalid value for '--faults': bad fault item 'boom=1'"),
    # An answer held forever (a server thread hung for good), and a key whose last value silently won.
    (["--faults", "delay=inf"], "Invalid value for '--faults': fault setting delay is seconds: give 0..3600 (an "
                                "hour), got inf"),
    (["--faults", "late_create=1,late_delay=1e9"], "fault setting late_delay is seconds: give 0..3600"),
    (["--faults", "429=0.1,429=0.2"], "Invalid value for '--faults': fault 429 is given twice in "
                                      "'429=0.1,429=0.2': give it once"),
    (["--speed", "0"], "Invalid value for '--speed'"),
    (["--start", "yesterday"], "'yesterday' is not an ISO 8601 time"),
    (["--trace", "/nonexistent/trace.csv"], "does not exist"),
])
def test_serve_rejects_bad_options_in_one_line(args, needle):
    result = CliRunner().invoke(main, ["sim", "serve", *args])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_serve_says_how_it_plays_a_trace(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts,gpu_type,minimum_bid_price,uninterruptable_price\n"
                    "2016-06-22T12:00:00Z,z,0.12,0.65\n2016-06-22T13:00:00Z,z,0.2,0.65\n")
    for start, said in (("2016-06-22T12:30:00Z", f"Market: trace {path}, at its own times;"),
                        ("2016-06-24T12:00:00Z", f"Market: trace {path}, its first row (2016-06-22T12:00:00Z) "
                                                 "played at the start, 2.0d later than its own times;")):
        proc, _ = _serve("--trace", str(path), "--start", start)
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(3)]
            assert lines[1].startswith(f"Virtual clock at {start};")
            assert lines[2].startswith(said), lines[2]
        finally:
            _finish(proc)


def test_serve_reports_a_bad_trace_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ts,gpu_type\n")
    result = CliRunner().invoke(main, ["sim", "serve", "--trace", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"Error: {path} line 1: the header lacks column minimum_bid_price")


def test_serve_says_it_does_not_replay_a_traces_vast_rows(tmp_path):
    # A trace of `sim trace --market vast` (or an export of a database with Vast's rows) was grouped by
    # GPU type and cloud alone: its Vast GPU became a RunPod type without prices, and Vast's API went on
    # serving the model, while the startup line said "Market: trace ...".
    head = "ts,gpu_type,minimum_bid_price,uninterruptable_price,cloud,gpu_count,stock_status,market,offers\n"
    vast = "2026-01-01T00:00:00Z,RTX 4090,0.12,0.35,VERIFIED,1,11 offers,vast,11\n"
    only = tmp_path / "v.csv"
    only.write_text(head + vast)
    result = CliRunner().invoke(main, ["sim", "serve", "--trace", str(only)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip() == (f"Error: {only} holds no RunPod rows (its 1 rows are another market's, Vast's): the "
                                     "emulator replays a trace on RunPod's API only, and Vast's API serves its own "
                                     "offer model (--seed); give a trace of RunPod's market"), result.output
    both = tmp_path / "both.csv"
    both.write_text(head + vast + "2026-01-01T00:00:00Z,NVIDIA RTX A6000,0.2,0.5,SECURE,1,,runpod,\n")
    proc, url = _serve("--trace", str(both))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[2].startswith(f"Market: trace {both}, at its own times (RunPod's rows; its 1 Vast rows are not "
                                   "replayed: Vast's API serves the model);"), lines[2]
        quotes = httpx.post(url, headers={"Authorization": f"Bearer {TEST_API_KEY}"}, json={
            "query": "{ gpuTypes { id } }"}, timeout=10).json()["data"]["gpuTypes"]
        assert [q["id"] for q in quotes] == ["NVIDIA RTX A6000"]  # no RunPod type made of the Vast row
    finally:
        _finish(proc)


def test_trace_command_writes_a_readable_trace(tmp_path):
    out = tmp_path / "sim.csv"
    result = CliRunner().invoke(main, ["sim", "trace", str(out), "--seed", "4", "--days", "1", "--step", "10m",
                                       "--gpu-type", "NVIDIA RTX A6000", "--gpu-type", "NVIDIA L4"])
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote 432 rows to {out}.\n"   # 144 steps x (A6000 x 2 clouds + L4 x 1)
    series = {(q.gpu_type_id, q.cloud, q.gpu_count) for q in read_trace(out)}
    assert series == {("NVIDIA RTX A6000", "SECURE", 1), ("NVIDIA RTX A6000", "COMMUNITY", 1),
                           ("NVIDIA L4", "SECURE", 1)}
    bad = CliRunner().invoke(main, ["sim", "trace", str(out), "--gpu-type", "NVIDIA GTX 9999"])
    assert bad.exit_code == 2 and "unknown GPU type" in bad.output


def test_trace_command_keeps_a_short_span_and_writes_to_stdout(tmp_path):
    # 0.1 day at 1 h: instants 0, 1 and 2 h (it wrote 0 and 1); 0.001 day: its start (it wrote none).
    for days, instants in (("0.1", 3), ("0.001", 1)):
        out = tmp_path / f"d{days}.csv"
        result = CliRunner().invoke(main, ["sim", "trace", str(out), "--days", days, "--step", "1h",
                                           "--gpu", "NVIDIA L4"])
        assert result.exit_code == 0, result.output
        assert len({q.ts for q in read_trace(out)}) == instants, days
    # '-' is stdout (it wrote a file named '-'), so `sim trace - | import-trace -` works.
    result = CliRunner().invoke(main, ["sim", "trace", "-", "--days", "0.1", "--step", "1h", "--gpu", "NVIDIA L4"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ts,gpu_type,minimum_bid_price,uninterruptable_price")
    assert len(read_trace(io.StringIO(result.stdout))) == 3 and result.stderr == "Wrote 3 rows to stdout.\n"
    assert not (Path.cwd() / "-").exists()


def test_speed_mode_moves_the_clock_by_itself():
    with Emulator(speed=36000) as emu:
        start = emu.now
        deadline = time.monotonic() + 10
        while emu.now - start < timedelta(hours=1) and time.monotonic() < deadline:
            time.sleep(0.02)  # wall-clock mode is what is under test here
        assert emu.now - start >= timedelta(hours=1)


def test_stop_leaves_no_thread_and_no_port_behind():
    before = threading.active_count()
    emu = Emulator(speed=60, faults="timeout=1,delay=30").start()
    url = emu.url
    keep_alive = httpx.Client(timeout=10)
    keep_alive.get(emu.base_url + "/sim/now")          # an idle keep-alive connection stays open
    pending = threading.Thread(target=lambda: _swallow(lambda: httpx.post(url, json={"query": "{ myself { id } }"},
                                                                          timeout=60)))
    pending.start()                                     # a request parked on the timeout fault
    time.sleep(0.1)
    t0 = time.monotonic()
    emu.stop()
    assert time.monotonic() - t0 < 5
    pending.join(10)
    keep_alive.close()
    assert threading.active_count() == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(url.removesuffix("/graphql") + "/sim/now", timeout=2)


def _swallow(call):
    with contextlib.suppress(httpx.HTTPError):  # the parked request is cut off by stop(): expected
        call()


def test_concurrent_creates_never_oversell_capacity(emulator):
    from sim_helpers import AUTH, DEPLOY

    from bidder.sim.world import ON_DEMAND_NO_INSTANCES

    gpu = "NVIDIA RTX A6000"
    emulator.world.set_capacity(gpu, "COMMUNITY", 10)
    results: list[dict] = []

    def worker(i: int) -> None:
        with httpx.Client(headers=AUTH, timeout=10) as http:
            for j in range(3):
                spec = {"gpuTypeId": gpu, "cloudType": "COMMUNITY", "name": f"w{i}-{j}"}
                results.append(http.post(emulator.url, json={"query": DEPLOY, "variables": {"input": spec}}).json())

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    created = [r["data"]["podFindAndDeployOnDemand"] for r in results if r["data"]["podFindAndDeployOnDemand"]]
    refused = [r["errors"][0]["message"] for r in results if not r["data"]["podFindAndDeployOnDemand"]]
    assert len(results) == 24
    assert len({p["id"] for p in created}) == len(created) == 10
    assert refused == [ON_DEMAND_NO_INSTANCES] * 14
    assert emulator.world.free_gpus(gpu, "COMMUNITY") == 0


def test_serve_with_no_spot_fields():
    proc, url = _serve("--no-spot-fields")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[2].endswith("spot off, spot price fields removed; faults off.")
        auth = {"Authorization": f"Bearer {TEST_API_KEY}"}
        floor = httpx.post(url, json={"query": "{ gpuTypes { lowestPrice(input: {gpuCount: 1}) { minimumBidPrice } } }"},
                           headers=auth, timeout=10)
        assert floor.status_code == 400
        assert floor.json()["errors"][0]["message"] == 'Cannot query field "minimumBidPrice" on type "LowestPrice".'
        on_demand = httpx.post(url, json={"query": "{ gpuTypes { lowestPrice(input: {gpuCount: 1}) "
                                                   "{ uninterruptablePrice } } }"}, headers=auth, timeout=10)
        assert on_demand.status_code == 200
    finally:
        _finish(proc)
    assert proc.returncode == 0
