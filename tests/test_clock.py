"""One clock with the emulator (issue 9, part 1): the emulator tells its time on every answer, the
client remembers it, commands run on it, and time never runs backwards silently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bidder.cli import main
from bidder.clock import SIM_NOW_HEADER, Clock, server_time
from bidder.models import PriceQuote
from bidder.runpod import RunPodClient
from bidder.sim import TEST_API_KEY, Emulator
from bidder.store import Store, estimate_spend
from bidder.units import to_iso
from bidder.vast import VastClient

WALL = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


# -- 1. the emulator tells its time ------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [("GET", "/sim/now"), ("POST", "/graphql"), ("POST", "/sim/advance"),
                                          ("GET", "/graphql"), ("GET", "/no/such/route"), ("PUT", "/graphql"),
                                          ("POST", "/api/v0/bundles/")])
def test_every_answer_carries_the_virtual_time(emulator: Emulator, method: str, path: str) -> None:
    emulator.advance(90)
    body = {"seconds": 0} if path == "/sim/advance" else {"query": "{ myself { id } }"}
    answer = httpx.request(method, emulator.base_url + path, json=body if method != "GET" else None, timeout=10)
    assert answer.headers[SIM_NOW_HEADER] == "2026-01-01T00:01:30Z"
    assert server_time(answer.headers) == emulator.now


def test_sim_now_answers_the_time_and_moves_with_advance(emulator: Emulator) -> None:
    assert httpx.get(emulator.base_url + "/sim/now", timeout=10).json() == {"now": "2026-01-01T00:00:00Z"}
    httpx.post(emulator.base_url + "/sim/advance", json={"seconds": 3600}, timeout=10)
    answer = httpx.get(emulator.base_url + "/sim/now", timeout=10)
    assert answer.json() == {"now": "2026-01-01T01:00:00Z"}
    assert answer.headers[SIM_NOW_HEADER] == "2026-01-01T01:00:00Z"


# -- 2. the client remembers it; commands that talk to the API run on it --------------------------------
def test_the_client_remembers_the_emulators_time(emulator: Emulator, client) -> None:
    assert client.server_now is None
    client.myself()
    assert client.server_now == emulator.now
    emulator.advance(3600)
    client.gpu_types()
    assert client.server_now == emulator.now == datetime(2026, 1, 1, 1, tzinfo=UTC)


def test_the_probe_goes_only_to_a_server_on_this_machine() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(404, json={"errors": [{"message": "no route"}]})

    transport = httpx.MockTransport(answer)  # the transport seam: what would go out, nothing patched
    with httpx.Client(transport=transport) as http:
        runpod = RunPodClient(api_key="k", url="https://api.runpod.io/graphql", http=http)
        assert runpod.probe_server_now() is None and sent == []  # never an extra request to RunPod
        assert Clock(server=runpod, wall=lambda: WALL).now() == WALL
        local = RunPodClient(api_key="k", url="http://127.0.0.1:9/graphql", http=http)
        assert local.probe_server_now() is None and sent == ["http://127.0.0.1:9/sim/now"]
        assert local.probe_server_now() is None and len(sent) == 1  # it answered without the header: once
        # Vast's client asks the same way: never Vast itself, a server on this machine once.
        vast = VastClient(api_key="k", url="https://console.vast.ai", http=http)
        assert vast.probe_server_now() is None and len(sent) == 1
        local_vast = VastClient(api_key="k", url="http://127.0.0.1:9", http=http)
        assert local_vast.probe_server_now() is None and sent[1:] == ["http://127.0.0.1:9/sim/now"]
        assert local_vast.probe_server_now() is None and len(sent) == 2


def test_clock_order_given_then_emulator_then_wall(emulator: Emulator, client) -> None:
    emulator.advance(120)
    given = datetime(2026, 3, 1, tzinfo=UTC)
    assert Clock(given, client).now() == given
    clock = Clock(None, client, wall=lambda: WALL)
    assert clock.now() == emulator.now and clock.source == "emulator"  # one GET /sim/now: no request made yet
    emulator.advance(60)
    assert clock.now() == emulator.now - timedelta(seconds=60)  # cheap: the last answer's time
    assert clock.now(fresh=True) == emulator.now                 # a loop's next cycle asks again
    assert Clock(None, None, wall=lambda: WALL).now() == WALL


def _cli(*args: str):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(main, list(args))


def test_collect_every_stamps_a_failed_cycle_by_the_emulators_clock(emulator: Emulator, tmp_path: Path) -> None:
    # Its other lines carry the emulator's time: a failure stamped by the wall clock read as 11 months later.
    emulator.advance(7200)
    emulator.set_faults("500=1")
    result = _cli("collect", "--db", str(tmp_path / "bidder.db"), "--api-url", emulator.url, "--every", "1s",
                  "--cycles", "1", "--retries", "1")
    assert result.exit_code == 1 and "every collection attempt failed" in result.stderr, result.output
    [failed] = [line for line in result.stderr.splitlines() if "collection failed" in line]
    assert failed.startswith("2026-01-01T02:00:00Z  collection failed:"), failed
    assert "next try at the next interval" in failed


def _collections(db: Path) -> list[tuple[datetime, str]]:
    with Store.open(db) as store:
        return [(r["ts"], r["clock"]) for r in reversed(store.collections())]


def test_collect_stamps_the_emulators_time_and_takes_now(emulator: Emulator, tmp_path: Path) -> None:
    db = tmp_path / "bidder.db"
    emulator.advance(7200)
    assert _cli("collect", "--db", str(db), "--api-url", emulator.url).exit_code == 0
    emulator.advance(3600)  # a --now may not lie after the emulator's clock (test_collector.py)
    later = _cli("collect", "--db", str(db), "--api-url", emulator.url, "--now", "2026-01-01T02:30:00Z")
    assert later.exit_code == 0, later.output
    assert _collections(db) == [(datetime(2026, 1, 1, 2, tzinfo=UTC), "emulator"),
                                (datetime(2026, 1, 1, 2, 30, tzinfo=UTC), "given")]
    both = _cli("collect", "--db", str(db), "--api-url", emulator.url, "--now", "2026-01-01T03:00:00Z",
                "--every", "5m")
    assert both.exit_code == 2 and "--now stamps one snapshot" in both.output


def _both_cli(emulator: Emulator, *args: str):
    env = {"RUNPOD_API_KEY": TEST_API_KEY, "VAST_API_KEY": TEST_API_KEY, "VAST_URL": emulator.vast_url}
    return CliRunner(env=env).invoke(main, list(args))


def test_collect_takes_the_emulators_time_from_vast_too(emulator: Emulator, tmp_path: Path) -> None:
    """Vast's answers carry the emulator's time as RunPod's do: `--market vast`, or RunPod unreachable,
    still stamps the emulator's time, and the next collect of both markets is not refused."""
    db = str(tmp_path / "bidder.db")
    emulator.advance(3600)
    vast = _both_cli(emulator, "collect", "--db", db, "--market", "vast")
    assert vast.exit_code == 0, vast.output
    assert vast.stdout.startswith("2026-01-01T01:00:00Z  vast: stored ")
    emulator.advance(600)
    both = _both_cli(emulator, "collect", "--db", db, "--api-url", emulator.url)
    assert both.exit_code == 0, both.output
    emulator.advance(600)
    down = _both_cli(emulator, "collect", "--db", db, "--api-url", "http://127.0.0.1:1/graphql", "--retries", "1")
    assert down.exit_code == 1 and "runpod: collection failed" in down.stderr
    # One line, the cause in it and what was stored (a cron mail of the Error: line alone said what failed).
    [line] = down.stderr.splitlines()
    assert line.startswith("Error: runpod: collection failed: ") and line.endswith(" (vast stored)"), line
    assert _collections(Path(db)) == [(datetime(2026, 1, 1, 1, tzinfo=UTC), "emulator")] + [
        (datetime(2026, 1, 1, 1, 10, tzinfo=UTC), "emulator")] * 2 + [
        (datetime(2026, 1, 1, 1, 20, tzinfo=UTC), "emulator")] * 2


def test_recommend_refresh_works_with_now_and_reads_the_emulators_time(emulator: Emulator, tmp_path: Path) -> None:
    db = str(tmp_path / "bidder.db")
    for _ in range(4):
        assert _cli("collect", "--db", db, "--api-url", emulator.url).exit_code == 0
        emulator.advance(1800)
    # Read-only: the newest snapshot came from the emulator, so its time is the command's time.
    result = _cli("recommend", "--db", db, "--gpu", "RTX A6000", "--hours", "10", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["history"]["to"] == "2026-01-01T01:30:00Z"
    assert "the emulator's clock" in result.stderr
    refreshed = _cli("recommend", "--db", db, "--api-url", emulator.url, "--gpu", "RTX A6000", "--hours", "10",
                     "--refresh", "--now", "2026-01-01T02:00:00Z", "--format", "json")
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.stdout)["history"]["to"] == "2026-01-01T02:00:00Z"
    assert "refreshed: " in refreshed.stderr


def test_the_emulator_clock_note_follows_success_and_never_sits_above_an_error(emulator: Emulator,
                                                                              tmp_path: Path) -> None:
    db = str(tmp_path / "bidder.db")
    assert _cli("collect", "--db", db, "--api-url", emulator.url).exit_code == 0
    ok = _cli("history", "RTX A6000", "--db", db, "--since", "1d")
    assert ok.exit_code == 0 and ok.stderr.startswith("Note: time 2026-01-01T00:00:00Z is the emulator's clock")
    bad = _cli("chart", "prices", "--gpu", "4900", "--db", db, str(tmp_path / "x.png"))
    assert bad.exit_code == 1 and bad.stderr.splitlines() == [bad.stderr.strip()]  # the error alone
    assert bad.stderr.startswith("Error: unknown GPU type '4900'")


@pytest.mark.parametrize("since", ["2020-06-01T00:00:00Z",   # after the emulator's time, before the wall clock
                                   "2999-01-01T00:00:00Z"])  # after both
def test_every_read_command_checks_a_since_against_the_databases_own_time(far: Emulator, tmp_path: Path,
                                                                         since: str) -> None:
    """A database the emulator stamped (2020-03-01): `history --since TIME` without --now checked TIME
    against the wall clock, as report, chart and `history --now` do not. A TIME between the two read as
    "no samples ... (try --since all)", exit 1; one after both named the wall clock as now."""
    db = str(tmp_path / "bidder.db")
    _history(far, db)  # an hour of snapshots, the newest at 2020-03-01T01:00:00Z
    said = f"the period is empty: --since {since} is not before now (2020-03-01T01:00:00Z)"
    for args in (("history", "RTX A6000"), ("history", "RTX A6000", "--now", "2020-03-01T01:00:00Z"),
                 ("report",), ("chart", "prices", str(tmp_path / "p.png")),
                 ("chart", "spend", str(tmp_path / "s.png"))):
        result = _cli(*args, "--since", since, "--db", db)
        assert result.exit_code == 2, (args, result.output)
        [line] = result.stderr.splitlines()  # the error alone
        assert line.startswith(f"Error: Invalid value for --since: {said} (see `"), (args, line)
    # A --since in the history still reads it, to its newest sample (the window's end is not moved).
    ok = _cli("history", "RTX A6000", "--since", "2020-03-01T00:30:00Z", "--db", db, "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert {(row["from"], row["to"]) for row in json.loads(ok.stdout)} == {("2020-03-01T00:30:00Z",
                                                                            "2020-03-01T01:00:00Z")}


# -- 4. time never runs backwards silently ------------------------------------------------------------
def test_a_time_before_the_newest_data_is_refused_in_one_line(emulator: Emulator, tmp_path: Path) -> None:
    db = str(tmp_path / "bidder.db")
    emulator.advance(7200)
    assert _cli("collect", "--db", db, "--api-url", emulator.url).exit_code == 0
    back = _cli("collect", "--db", db, "--api-url", emulator.url, "--now", "2026-01-01T01:00:00Z")
    assert back.exit_code == 1 and "Traceback" not in back.output
    assert back.stderr.splitlines() == [
        f"Error: time would run backwards: this command's time 2026-01-01T01:00:00Z is before the newest snapshot "
        f"in {db} (2026-01-01T02:00:00Z); give --now at or after it, or --allow-past to replay an earlier time "
        f"on purpose"]
    assert len(_collections(Path(db))) == 1  # nothing written
    replay = _cli("collect", "--db", db, "--api-url", emulator.url, "--now", "2026-01-01T01:00:00Z", "--allow-past")
    assert replay.exit_code == 0, replay.output
    # A read-only command on the wall clock refuses data from its future; --now is an as-of time.
    future = str(tmp_path / "future.db")
    # (Stored directly: collect refuses a --now more than a day after every clock.)
    far = datetime(2099, 1, 1, tzinfo=UTC)
    with Store.open(future) as store:
        store.record_collection(far, [PriceQuote(ts=far, gpu_type_id="NVIDIA RTX A6000", cloud="SECURE", gpu_count=1,
                                                 minimum_bid_price=0.2, uninterruptable_price=0.5)], duration_s=0.1)
    wall = _cli("history", "RTX A6000", "--db", future, "--since", "7d")
    assert wall.exit_code == 1 and "time would run backwards" in wall.stderr
    assert _cli("history", "RTX A6000", "--db", future, "--since", "7d", "--allow-past").exit_code == 0
    assert _cli("history", "RTX A6000", "--db", future, "--since", "1d", "--now", "2099-01-01T00:00:00Z",
                "--format", "json").exit_code == 0


def test_a_collect_that_could_not_reach_the_emulator_does_not_stop_the_next_ones(emulator: Emulator,
                                                                                tmp_path: Path) -> None:
    db = str(tmp_path / "bidder.db")
    assert _cli("collect", "--db", db, "--api-url", emulator.url).exit_code == 0
    # A mistyped URL: no answer, so no emulator clock. Its only time would be the wall clock's, months
    # off this history: the failure is said (one line, exit 1) and no row is written.
    failed = _cli("collect", "--db", db, "--api-url", "http://127.0.0.1:1/graphql", "--retries", "1")
    assert failed.exit_code == 1 and len(failed.stderr.strip().splitlines()) == 1
    emulator.advance(600)
    again = _cli("collect", "--db", db, "--api-url", emulator.url)
    assert again.exit_code == 0, again.output + again.stderr
    assert _collections(Path(db)) == [(datetime(2026, 1, 1, tzinfo=UTC), "emulator"),
                                      (datetime(2026, 1, 1, 0, 10, tzinfo=UTC), "emulator")]


# -- 5. a failed collection carries the API's time, or is not recorded ------------------------------
FAR = datetime(2020, 3, 1, tzinfo=UTC)  # the emulator's clock, years from the wall clock
DOWN = "http://127.0.0.1:9/graphql"     # nothing listens there


@pytest.fixture
def far() -> Iterator[Emulator]:
    with Emulator(seed=0, start=FAR) as emu:
        yield emu


def _history(emu: Emulator, db: str, *, markets: str = "runpod", samples: int = 13) -> None:
    """An hour of 5-minute snapshots through the real `bidder collect`, on the emulator's clock."""
    for _ in range(samples):
        collected = _both_cli(emu, "collect", "--db", db, "--api-url", emu.url, "--market",
                              "any" if markets == "both" else markets)
        assert collected.exit_code == 0, collected.output
        emu.advance(300)


def test_a_refresh_that_cannot_reach_the_emulator_records_nothing_and_keeps_its_clock(far: Emulator,
                                                                                      tmp_path: Path) -> None:
    db = str(tmp_path / "bidder.db")
    _history(far, db)
    before = _collections(Path(db))
    # collect and launch against a URL that never answers: no API time is known, and the wall clock's
    # time would sit years after this history. Each says its failure; none writes.
    collect = _cli("collect", "--db", db, "--api-url", DOWN, "--retries", "1")
    launch = _cli("launch", "--gpu", "RTX A6000", "--tolerance", "none", "--image", "img", "--yes", "--db", db,
                  "--api-url", DOWN, "--retries", "1")
    for failed in (collect, launch):
        assert failed.exit_code == 1 and "Connection refused" in failed.stderr, failed.output
        assert len(failed.stderr.strip().splitlines()) == 1
    assert _collections(Path(db)) == before
    # So the database is still on the emulator's clock: a read-only recommend decides as of its history.
    later = _cli("recommend", "--gpu", "RTX A6000", "--hours", "2", "--db", db, "--format", "json")
    assert later.exit_code == 0, later.output
    assert json.loads(later.stdout)["history"]["to"] == "2020-03-01T01:00:00Z"


def test_a_refresh_that_fails_decides_on_the_databases_own_time_and_says_so(far: Emulator, tmp_path: Path) -> None:
    """recommend --refresh against a URL that never answers: the wall clock would make the emulator's
    history years old ("the newest price snapshot is 2469.6d old"); it decides on the database's own
    time, as `recommend` without --refresh does, and says that the refresh failed."""
    db = str(tmp_path / "bidder.db")
    _history(far, db)
    before = _collections(Path(db))
    args = ("recommend", "--refresh", "--gpu", "RTX A6000", "--hours", "2", "--db", db, "--api-url", DOWN)
    table = _cli(*args)
    assert table.exit_code == 0, table.output + table.stderr
    note = next(line for line in table.stdout.splitlines() if line.startswith("Note: --refresh failed"))
    assert note.startswith(f"Note: --refresh failed: could not refresh prices from {DOWN} (") and \
        "Connection refused" in note, note
    assert note.endswith(f"using the stored history, as of 2020-03-01T01:00:00Z: the emulator's time (the newest "
                         f"snapshot in {db} was stamped by bidder's emulator; --now TIME to choose another)"), note
    js = _cli(*args, "--format", "json")
    assert js.exit_code == 0, js.output + js.stderr
    assert json.loads(js.stdout)["history"]["to"] == "2020-03-01T01:00:00Z" and "--refresh failed" in js.stderr
    assert _collections(Path(db)) == before  # nothing written on either clock


def test_a_failed_collection_is_recorded_on_the_wall_clock_when_that_is_the_apis(tmp_path: Path) -> None:
    # A service elsewhere (RunPod, which sends no clock): the wall clock is the API's, and the failed
    # cycle keeps its row for whoever watches the collections.
    db = str(tmp_path / "bidder.db")
    failed = _cli("collect", "--db", db, "--api-url", "http://runpod-down.invalid/graphql", "--retries", "1")
    assert failed.exit_code == 1
    [(ts, clock)] = _collections(Path(db))
    assert clock == "wall" and abs(datetime.now(UTC) - ts) < timedelta(minutes=5)


def test_an_address_on_this_machine_that_never_answers_has_no_time_and_writes_nothing(tmp_path: Path) -> None:
    """It may be the emulator, started late: stamped with the wall clock, its failure (or its prices, once
    a retry reached it) put the database years ahead of the emulator, and every later collect was refused
    as running backwards."""
    db = tmp_path / "bidder.db"
    Store.open(db).close()
    failed = _cli("collect", "--db", str(db), "--api-url", DOWN, "--retries", "1")
    assert failed.exit_code == 1
    assert failed.output.startswith("Error: reading the server's time: cannot connect (http://127.0.0.1:9/sim/now)")
    assert _collections(db) == []


@pytest.mark.parametrize("command", ["launch", "tick", "recommend"])
def test_with_runpod_down_the_refresh_takes_the_emulators_time_from_vast(far: Emulator, tmp_path: Path,
                                                                        command: str) -> None:
    """RunPod's URL never answers, Vast's (the emulator) does: the cycle's rows, Vast's snapshot and
    RunPod's failure alike, carry the emulator's time, not the wall clock's. (`recommend --refresh`
    stamped Vast's snapshot with the database's newest time, replacing that older snapshot, and on a
    new database with the wall clock, after which every collection was refused as running backwards.)"""
    db = str(tmp_path / "bidder.db")
    _history(far, db, markets="both")
    if command == "launch":
        # (A dry run keeps nothing: a launch that goes ahead, on Vast, as RunPod cannot be reached.)
        args = ["launch", "--gpu", "RTX 4090", "--cloud", "verified", "--tolerance", "none", "--image", "img", "--yes"]
    elif command == "recommend":
        far.advance(600)  # past the newest snapshot: its time is not the emulator's now
        result = _both_cli(far, "recommend", "--refresh", "--gpu", "RTX 4090", "--hours", "2", "--db", db,
                           "--api-url", DOWN)
        assert result.exit_code == 0, result.output
        assert "refreshed Vast: " in result.output and f"quotes at {to_iso(far.now)}" in result.output, result.output
        assert f"; using RunPod's stored history, as of {to_iso(far.now)}: the time Vast's answer told" in result.output
        with Store.open(db) as store:
            [newest] = store.collections(limit=1)
        assert (newest["market"], newest["ts"], newest["clock"], newest["error"]) == ("vast", far.now, "emulator", None)
        collect = _both_cli(far, "collect", "--db", db, "--api-url", far.url, "--market", "any")
        assert collect.exit_code == 0, collect.output  # (on the wall clock it was refused: time ran backwards)
        return
    else:
        (tmp_path / "bidder.toml").write_text('[jobs.v]\ngpu = ["RTX 4090"]\nmarket = "vast"\nhours = 2\n'
                                              'tolerance = "none"\nimage = "img"\n')
        args = ["tick", "--config", str(tmp_path / "bidder.toml")]  # (a dry run writes nothing: a real tick)
    result = _both_cli(far, *args, "--db", db, "--api-url", DOWN, "--retries", "1")
    assert result.exit_code == 0, result.output
    with Store.open(db) as store:
        newest = store.collections(limit=2)
    assert {(r["market"], r["ts"], r["clock"], r["error"] is None) for r in newest} == {
        ("vast", far.now, "emulator", True), ("runpod", far.now, "emulator", False)}


def test_an_older_databases_wall_clock_failure_does_not_take_it_off_the_emulators_clock(tmp_path: Path) -> None:
    # A failed cycle stamped by the wall clock (what bidder wrote before) is no sign of the clock in use.
    with Store.open(tmp_path / "bidder.db") as store:
        store.clock = "emulator"
        store.record_collection(FAR, [], duration_s=0.0, error="TransportError: x")
        store.record_collection(FAR + timedelta(minutes=5), [], duration_s=0.0, error="TransportError: y")
        store.clock = "wall"
        store.record_collection(WALL, [], duration_s=0.0, error="TransportError: cannot connect")
        assert store.emulator_time() == FAR + timedelta(minutes=5)


def test_two_polls_in_the_same_second_are_both_kept(tmp_path: Path) -> None:
    with Store.open(tmp_path / "bidder.db") as store:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        store.record_observation(at, "p1", desired_status="RUNNING", cost_per_hr=0.5, uptime_seconds=600)
        store.record_observation(at + timedelta(microseconds=400_000), "p1", desired_status="EXITED",
                                 cost_per_hr=0.5, uptime_seconds=None)
        rows = store.observations("p1")
        assert [(r["ts"], r["seq"], r["desired_status"]) for r in rows] == [(at, 0, "RUNNING"), (at, 1, "EXITED")]
        assert store.last_observation("p1")["desired_status"] == "EXITED"


def test_polls_of_two_clocks_book_no_more_than_the_uptime_grew() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    polls = [{"ts": t0, "desired_status": "RUNNING", "cost_per_hr": 0.33, "uptime_seconds": 600, "clock": "given"},
             {"ts": t0 + timedelta(hours=1), "desired_status": "RUNNING", "cost_per_hr": 0.33,
              "uptime_seconds": 4200, "clock": "given"},
             {"ts": datetime(2026, 12, 2, tzinfo=UTC), "desired_status": "RUNNING", "cost_per_hr": 0.33,
              "uptime_seconds": 1800, "clock": "wall"}]  # the wall clock's poll, months "later"
    assert estimate_spend(polls) == pytest.approx(0.33 * 4200 / 3600)


def test_an_emulator_still_starting_is_waited_for_not_taken_for_the_wall_clock() -> None:
    # `bidder sim serve ... &` then `bidder collect` at once: the first connection is refused.
    import threading

    port = _free_port()
    emu = Emulator(seed=0, port=port)
    starter = threading.Timer(0.3, emu.start)
    starter.start()
    try:
        with RunPodClient(api_key=TEST_API_KEY, url=f"http://127.0.0.1:{port}/graphql") as client:
            clock = Clock(None, client, wall=lambda: WALL)
            assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC) and clock.source == "emulator"
    finally:
        starter.join()
        emu.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sim_pods_is_the_emulators_own_account(emulator: Emulator, client) -> None:
    from bidder.runpod import PodSpec

    emulator.world.reclaim_rate_per_hour = 0.0
    emulator.world.set_floor("NVIDIA RTX A6000", "COMMUNITY", 0.2)
    spec = PodSpec(name="acct-1", image_name="img", gpu_type_id="NVIDIA RTX A6000", gpu_count=2,
                   cloud_type="COMMUNITY")
    pod = client.rent_interruptable(spec, bid_per_gpu=0.25)
    emulator.advance(5400)
    answer = httpx.get(emulator.base_url + "/sim/pods", timeout=10)
    assert answer.text.endswith("}\n")
    body = answer.json()
    assert body["now"] == "2026-01-01T01:30:00Z"
    (row,) = body["pods"]
    assert row["id"] == pod.id and row["name"] == "acct-1" and row["interruptions"] == 0
    assert row["running_hours"] == pytest.approx(1.5)
    assert row["billed"] == pytest.approx(emulator.world.true_spend(pod.id)) == pytest.approx(1.5 * 0.5)


_JOB = """
[jobs.train]
gpu = ["NVIDIA RTX A6000"]
cloud = "community"
keep_running = true
tolerance = "none"
image = "runpod/pytorch:latest"
"""


def test_pods_and_report_agree_with_the_bill_when_clocks_are_mixed(emulator: Emulator, client, tmp_path: Path) -> None:
    """The reproduced bug: a `pods --refresh` between two `--now` ticks booked $1,327.56 for a pod the
    emulator billed $0.33. Now the refresh takes the emulator's time by itself, and a refresh --now
    after the emulator's clock is refused (it booked only what the uptime grew, and every tick after it
    was refused as running backwards)."""
    from executor_helpers import make_env

    emulator.world.reclaim_rate_per_hour = 0.0
    env = make_env(emulator, client, tmp_path)
    env.store.close()
    (tmp_path / "bidder.toml").write_text(_JOB)
    base = ["--db", str(tmp_path / "bidder.db"), "--api-url", emulator.url]
    tick = ["tick", "--config", str(tmp_path / "bidder.toml"), *base]

    def now() -> list[str]:
        return ["--now", emulator.now.strftime("%Y-%m-%dT%H:%M:%SZ")]

    assert _cli(*tick, *now()).exit_code == 0
    emulator.advance(1800)
    assert _cli("pods", "--refresh", *base).exit_code == 0                    # the emulator's time, no flag
    emulator.advance(1800)
    assert _cli(*tick, *now()).exit_code == 0
    jump = _cli("pods", "--refresh", *base, "--now", "2026-12-02T06:00:00Z")  # a --now months ahead
    assert jump.exit_code == 2 and "is after the API's clock" in jump.output, jump.output
    emulator.advance(1800)
    assert _cli(*tick, *now()).exit_code == 0, "refused as running backwards after the jump"
    listed = json.loads(_cli("pods", "--all", "--format", "json", *base[:2]).stdout)
    report = json.loads(_cli("report", "--since", "all", "--format", "json", "--db", base[1], *now()).stdout)
    (pod,) = listed
    (reported,) = report["pods"]
    billed_then = 0.33 * 1.5  # on-demand A6000 community, 1.5 hours up to the last poll
    assert pod["spent"] == pytest.approx(billed_then, abs=0.01)
    assert reported["spend"] == pytest.approx(pod["spent"], abs=1e-3)
    assert pod["spent"] <= emulator.world.true_spend(pod["pod"]) + 1e-9


def test_the_wall_clock_tolerates_a_minute_of_skew_a_virtual_clock_none() -> None:
    from bidder.clock import WALL_SLACK, check_not_past
    from bidder.errors import TimeRunsBackwards

    newest = (WALL, "snapshot")
    check_not_past(WALL - timedelta(seconds=30), newest, where="db", slack=WALL_SLACK)  # cron jobs racing
    with pytest.raises(TimeRunsBackwards):
        check_not_past(WALL - timedelta(seconds=90), newest, where="db", slack=WALL_SLACK)
    with pytest.raises(TimeRunsBackwards):
        check_not_past(WALL - timedelta(seconds=1), newest, where="db")
    check_not_past(WALL, newest, where="db")


# -- 6. commands that act on pods take the emulator's time from whichever market answers -----------
@pytest.mark.parametrize("command", [("pods", "--refresh"), ("stop", "POD"), ("jobs", "--config", "TOML", "stop", "v")])
def test_with_runpod_down_pod_commands_take_the_emulators_time_from_vast(far: Emulator, tmp_path: Path,
                                                                         command: tuple[str, ...]) -> None:
    """RunPod's URL refuses connections, Vast's (the emulator, years from the wall clock) answers: the
    poll and the stop of a Vast instance are stamped with the emulator's time, as launch and tick stamp
    theirs, not with the wall clock's."""
    db = str(tmp_path / "bidder.db")
    _history(far, db, markets="both")
    toml = tmp_path / "bidder.toml"
    toml.write_text('[jobs.v]\ngpu = ["RTX 4090"]\nmarket = "vast"\nhours = 2\ntolerance = "none"\nimage = "img"\n')
    ticked = _both_cli(far, "tick", "--config", str(toml), "--db", db, "--api-url", far.url)
    assert ticked.exit_code == 0, ticked.output
    with Store.open(db) as store:
        [row] = store.managed_pods("v")
    pod = str(row["pod_id"])
    far.advance(600)
    args = [pod if a == "POD" else str(toml) if a == "TOML" else a for a in command]
    result = _both_cli(far, *args, "--db", db, "--api-url", DOWN)
    assert result.exit_code == 0, result.output + result.stderr
    with Store.open(db) as store:
        last = store.observations(pod)[-1]
        assert (last["ts"], last["clock"]) == (far.now, "emulator")
        if command[0] != "pods":
            stop = store.actions(pod_id=pod)[-1]
            assert stop["kind"] == "stop" and stop["ts"] == far.now, stop
