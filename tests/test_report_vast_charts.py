"""`bidder chart prices` and the HTML report's market chart on Vast: Vast's tiers drawn like RunPod's
clouds (from a trace imported into a real SQLite file), a hint that never suggests an option the user
already gave, and a Vast instance's standing bid drawn through its outbid pauses (a job ticked on the
emulator over HTTP until it finishes), checked through the data each chart is drawn from."""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import timedelta
from itertools import pairwise

import pytest
from click.testing import CliRunner
from test_report_charts import RTX4090 as RUNPOD4090
from two_markets import VAST4090, tick

from bidder.cli import main
from bidder.report.charts import _bid_line, _bid_spans, _paused_line, market_chart, png_bytes, price_chart
from bidder.report.data import PodTrack, pod_track, price_chart_data
from bidder.store import Store
from bidder.units import to_iso

PNG = b"\x89PNG\r\n\x1a\n"
TRACE_NOW = ["--now", "2026-01-03T00:00:00Z"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def vast_db(tmp_path_factory):
    """Two days of Vast's RTX 4090 market every 30 minutes, written by `bidder sim trace --market
    vast` and loaded by `bidder import-trace`, as a user would."""
    tmp = tmp_path_factory.mktemp("vast")
    trace, db = tmp / "v.csv", tmp / "v.db"
    result = run("sim", "trace", str(trace), "--market", "vast", "--days", "2", "--step", "30m", "--gpu", "RTX 4090")
    assert result.exit_code == 0, result.output
    result = run("import-trace", "--db", str(db), str(trace))
    assert result.exit_code == 0, result.output
    return str(db)


def test_chart_prices_draws_vasts_tiers(vast_db, tmp_path):
    with Store.open(vast_db, create=False) as store:
        series = price_chart_data(store, [VAST4090])
        assert [(s.market, s.cloud, s.gpu_count) for s in series] == [("vast", "VERIFIED", 1), ("vast", "UNVERIFIED", 1)]
        assert all(len(s) == 96 for s in series)  # every 30 minutes for two days, the end excluded
        assert [s.cloud for s in price_chart_data(store, [VAST4090], ["VERIFIED"], 2)] == ["VERIFIED"]
        assert price_chart_data(store, [VAST4090], market="runpod") == []
        fig = price_chart(series, names=store.gpu_type_names())
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[:2] == ["RTX 4090 verified floor", "RTX 4090 verified on-demand"]
    assert fig.axes[0].get_title().startswith("Vast: Spot floor")
    assert png_bytes(fig)[:8] == PNG

    for args, drawn in ((["--since", "all"], "RTX 4090 vast verified, RTX 4090 vast unverified"),
                        (["--gpu", "RTX 4090", "--cloud", "verified", "--since", "all"], "RTX 4090 vast verified"),
                        (["--market", "vast", "--gpu-count", "4", "--since", "2d"], "RTX 4090 vast verified, "
                                                                                     "RTX 4090 vast unverified")):
        out = tmp_path / "c.png"
        out.unlink(missing_ok=True)
        result = run("chart", "prices", "--db", vast_db, *args, *TRACE_NOW, str(out))
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Wrote {out}: {drawn}, "), result.output
        assert out.read_bytes()[:8] == PNG


def test_an_svg_or_pdf_chart_carries_no_local_wall_clock_date(vast_db, tmp_path):
    # matplotlib stamps the machine's local time, which is neither UTC nor the clock of --now.
    for name, stamp in (("c.svg", b"<dc:date>"), ("c.pdf", b"/CreationDate")):
        out = tmp_path / name
        result = run("chart", "prices", "--db", vast_db, "--market", "vast", "--since", "all", *TRACE_NOW, str(out))
        assert result.exit_code == 0, result.output
        data = out.read_bytes()
        assert len(data) > 1000 and stamp not in data, name


def test_no_prices_names_what_would_help_never_an_option_already_given(vast_db, tmp_path):
    out = tmp_path / "c.png"
    recorded = "recorded: vast verified (1, 2, 4, 8 GPUs); vast unverified (1, 2, 4, 8 GPUs)"
    for args, option, why in ((["--gpu-count", "3"], "--gpu-count", "for pods of 3 GPUs"),
                              (["--cloud", "secure"], "--cloud", "in cloud secure"),
                              (["--market", "runpod", "--gpu", "RTX 4090"], "--market", "in market runpod")):
        result = run("chart", "prices", "--db", vast_db, "--since", "all", *args, *TRACE_NOW, str(out))
        assert result.exit_code == 2, result.output
        assert f"Invalid value for {option}: no price of RTX 4090 was ever recorded {why}; {recorded}" in result.output
        assert "--since all" not in result.output and "Traceback" not in result.output
    result = run("chart", "prices", "--db", vast_db, "--market", "vast", "--cloud", "community", str(out))
    assert result.exit_code == 2 and "community is not a cloud of vast; its clouds are verified, unverified" in (
        result.output)
    # History outside the period: not an error; the hint names the option that reaches it.
    history = "their history runs from 2026-01-01T00:00:00Z to 2026-01-02T23:30:00Z"
    # A chart that says so replaces the last one (a cron job forwarding it must not send a stale chart).
    out.write_bytes(b"last week's chart")
    result = run("chart", "prices", "--db", vast_db, "--since", "1d", "--now", "2026-01-10T00:00:00Z", str(out))
    assert result.exit_code == 0, result.output
    assert f"{history}; start the period earlier, e.g. --since all. Wrote {out}, which says so." in result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    result = run("chart", "prices", "--db", vast_db, "--since", "all", "--until", "2025-12-01T00:00:00Z",
                 *TRACE_NOW, str(out))
    assert result.exit_code == 0, result.output
    assert f"{history}; end the period after it begins (--until, --now). Wrote {out}, which says so." in result.output
    assert "try --since all" not in result.output


def test_a_vast_bid_stands_through_a_pause_until_stopped_or_re_bid():
    """Bid 0.30 at 0, outbid at 60 (paused; running again at 90), re-bid 0.40 at 120, outbid at 130
    and destroyed while paused at 140; the pod's life (last poll) ends at 200."""
    track = PodTrack("v", VAST4090, "VERIFIED", "spot", bid_ts=(0.0, 120.0), bids=(0.3, 0.4), end=200.0,
                     interruptions=(60.0, 130.0), market="vast", stops=(140.0,), running_again=(90.0, None))
    assert _bid_spans(track, 200.0) == [(0.0, 60.0, 0.3, False, True), (60.0, 90.0, 0.3, True, True),
                                        (90.0, 120.0, 0.3, False, False), (120.0, 130.0, 0.4, False, True),
                                        (130.0, 140.0, 0.4, True, True)]
    xs, ys = _bid_line(track, 200.0)
    assert xs == [0.0, 60.0, 60.0, 90.0, 120.0, 120.0, 120.0, 130.0, 130.0]
    assert [y for y in ys if not math.isnan(y)] == [0.3, 0.3, 0.3, 0.3, 0.3, 0.4, 0.4]
    assert _paused_line(track, 200.0)[0] == [60.0, 90.0, 90.0, 130.0, 140.0, 140.0]
    # The same ledger on RunPod: each interruption ends the bid; a resume is a new bid.
    runpod = PodTrack("r", RUNPOD4090, "COMMUNITY", "spot", bid_ts=(0.0, 120.0), bids=(0.3, 0.4), end=200.0,
                      interruptions=(60.0, 130.0), stops=(140.0,), running_again=(90.0, None))
    assert _bid_spans(runpod, 200.0) == [(0.0, 60.0, 0.3, False, True), (120.0, 130.0, 0.4, False, True)]
    assert _paused_line(runpod, 200.0) == ([], [])


JOB = f"""collect_interval = "2h"

[jobs.v]
gpu = ["{VAST4090}"]
market = "vast"
hours = 12
tolerance = "high"
max_price = 0.6
budget = 60
image = "pytorch/pytorch"
disk = 20
on_finish = "terminate"
"""


def test_a_paused_vast_instances_bid_is_drawn_until_it_is_destroyed(both, tmp_path):
    env, api = both
    config = env.config(JOB)
    start = env.emu.now
    for _ in range(3 * 24 * 4):  # every 15 virtual minutes until the job is done (at most three days)
        tick(env, api, config)
        if env.store.job_state("v")["state"] == "finished":
            break
        env.emu.advance(900)
    assert env.store.job_state("v")["state"] == "finished"
    end = env.emu.now + timedelta(seconds=1)
    tracks = [pod_track(env.store, p["pod_id"], end) for p in env.store.managed_pods("v")]
    track = max(tracks, key=lambda t: len(t.interruptions))
    pod = env.store.pod(track.pod_id)
    assert track.market == pod["market"] == "vast"
    assert len(track.interruptions) >= 2, "the job must be paused more than once to mean anything"
    [destroyed] = track.stops
    spans = _bid_spans(track, track.end)
    # The bid stands from the rent until the instance is destroyed, without a gap, paused or not;
    # each interruption starts a paused stretch and lies on the bid.
    assert spans[0][0] == track.bid_ts[0] and spans[-1][1] == destroyed
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    # (A pause the tick saw as it destroyed the instance, to move the job on, has no stretch to draw.)
    drawn = [t for t in track.interruptions if t < destroyed]
    assert len(drawn) >= 2 and [s[0] for s in spans if s[3]] == drawn
    # Each stretch is drawn at the bid standing then (a re-bid of the paused instance moves it).
    assert all(s[2] == track.bids[bisect_right(track.bid_ts, s[0]) - 1] for s in spans)
    running_x = [x for x, y in zip(*_bid_line(track, track.end), strict=True) if not math.isnan(y)]
    assert max(running_x) == destroyed > drawn[-1]
    paused_x = _paused_line(track, track.end)[0]
    assert len(paused_x) == 3 * len(drawn)

    buckets = env.store.price_buckets(VAST4090, "VERIFIED", 1, since=start, until=end, bucket_s=900, market="vast")
    fig = market_chart(buckets, [track], "RTX 4090 (Vast, verified, 1 GPU)")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [label for label in labels if pod["pod_id"] in label] == [
        f"bid of pod {pod['pod_id']}", f"pod {pod['pod_id']} paused (outbid; its bid stands)",
        f"pod {pod['pod_id']} interrupted ({len(track.interruptions)}x)"]
    assert png_bytes(fig)[:8] == PNG

    # The CLI on the same file: the pod's market drawn with its bid, and by default the Vast pod's type.
    db, now = str(env.store.path), ["--now", to_iso(end)]
    out = tmp_path / "pod.png"
    result = run("chart", "prices", "--db", db, "--pod", pod["pod_id"], "--market", "vast", "--since", "all", *now,
                 str(out))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {out}: RTX 4090 vast verified")
    assert result.output.endswith(f"pod {pod['pod_id']} bid and {len(track.interruptions)} interruption(s) marked.\n")
    assert out.read_bytes()[:8] == PNG
    result = run("chart", "prices", "--db", db, "--since", "all", *now, str(tmp_path / "default.png"))
    assert result.exit_code == 0, result.output
    assert "RTX 4090 vast verified" in result.output
