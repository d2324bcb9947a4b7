"""A Vast snapshot through the real CLI against the emulator over HTTP: what `bidder collect --market
vast` stores is the whole market or nothing, and whatever it stores `bidder export` writes and
`bidder import-trace` reads back."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from client_helpers import one_line_error
from vast_helpers import vast_client

from bidder.cli import main
from bidder.sim import TEST_API_KEY, Emulator
from bidder.store import Store
from bidder.units import to_iso
from bidder.vast.operations import DEFAULT_SEARCH_LIMIT
from bidder.vast.summary import summarize_offers


def collect(emu, db, *extra: str):
    return CliRunner(env={"VAST_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--market", "vast", "--db", str(db), "--vast-url", emu.vast_url, "--retries", "1", *extra])


def stored(db) -> tuple[int, list[tuple]]:
    with Store.open(db) as store:
        prices = store._rows("SELECT count(*) FROM prices", ())[0][0]
        return prices, [tuple(r) for r in store._rows("SELECT market, quotes, error FROM collections", ())]


# -- an impossible offer: one host's listing, set aside; the rest is the market --------------------

@pytest.mark.parametrize("spoil", [
    {"num_gpus": 1, "min_bid": 2500.0, "dph_total": 3000.0},   # $2,500 per GPU-hour
    {"num_gpus": 2, "min_bid": 1.0, "dph_total": 2400.0},      # on-demand $1,200 per GPU-hour
    {"num_gpus": 1, "min_bid": 1e-9},                          # a 100% spot discount
    {"num_gpus": 8, "min_bid": 0.5, "dph_total": 0.0072},      # on-demand $0.0009 per GPU-hour
    {"gpu_name": ""},                                          # a name no trace can carry
    {"gpu_name": "RTX\n4090"},
], ids=["floor", "on-demand", "tiny-floor", "tiny-on-demand", "empty-name", "line-break"])
def test_an_impossible_offer_is_set_aside_and_the_rest_stored_and_exported_whole(emulator, tmp_path, spoil):
    """Stored, a $2,500 floor made the database's own export unreadable by `import-trace`; a host sets
    its own price, so one absurd listing is no reason to lose the market's snapshot either."""
    emulator.malform("vast:search", lambda p: {"offers": [{**p["offers"][0], **spoil, "id": 999999999},
                                                          *p["offers"][1:]]})
    db = tmp_path / "b.db"
    result = collect(emulator, db)
    assert result.exit_code == 0, result.output + result.stderr
    with Store.open(db) as store:
        assert store._rows("SELECT count(*) FROM offers WHERE offer_id = 999999999", ())[0][0] == 0
        assert store._rows("SELECT max(minimum_bid_price) FROM prices", ())[0][0] <= 1000
        assert store._rows("SELECT min(minimum_bid_price) FROM prices", ())[0][0] >= 0.001
        assert store._rows("SELECT min(uninterruptable_price) FROM prices", ())[0][0] >= 0.001
    out = tmp_path / "t.csv"
    runner = CliRunner()
    assert runner.invoke(main, ["export", "--db", str(db), "--since", "all", "-o", str(out)]).exit_code == 0
    imported = runner.invoke(main, ["import-trace", str(out), "--db", str(tmp_path / "c.db")])
    assert imported.exit_code == 0, imported.stderr


def _without(offer: dict, name: str) -> dict:
    return {k: v for k, v in offer.items() if k != name}


@pytest.mark.parametrize("spoil", [
    lambda o: {**o, "num_gpus": 0},
    lambda o: {**o, "num_gpus": 1.5},
    lambda o: {**o, "num_gpus": 2**63},   # (stored, it failed the write with a traceback)
    lambda o: _without(o, "num_gpus"),
    lambda o: _without(o, "id"),
    lambda o: _without(o, "machine_id"),
    lambda o: {**o, "host_id": 2**63},    # (stored whole numbers past SQLite's failed the write too)
    lambda o: {**o, "gpu_ram": 2**64},
    lambda o: {**o, "gpu_ram": -1},
], ids=["no-gpu", "half-a-gpu", "2**63-gpus", "no-num_gpus", "no-id", "no-machine_id", "2**63-host", "2**64-MB",
        "negative-MB"])
def test_an_offer_with_no_gpu_or_no_id_is_set_aside_and_the_rest_stored(emulator, tmp_path, caplog, spoil):
    """One listing with 0 or 1.5 GPUs, or without an id, failed the whole search ("field num_gpus should
    be >= 1") on every cycle while it stayed listed, though an empty GPU name was set aside."""
    whole = vast_client(emulator).search_offers(limit=100_000)
    odd = {}

    def one_odd(p):
        odd.update(p["offers"][0])
        return {"offers": [spoil(p["offers"][0]), *p["offers"][1:]]}

    emulator.malform("vast:search", one_odd)
    db = tmp_path / "b.db"
    result = collect(emulator, db)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"from {len(whole) - 1} offers" in result.output
    [warning] = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    named = f"offer {odd['id']}" if "id" in spoil(odd) else f"offer without an id (machine {odd['machine_id']}"
    assert named in warning and "Traceback" not in result.stderr
    with Store.open(db) as store:
        assert odd["id"] not in {o["offer_id"] for o in store.offers_at()}


def test_a_search_whose_every_offer_is_set_aside_is_an_error_row_not_a_snapshot(emulator, tmp_path, caplog):
    emulator.malform("vast:search", lambda p: {"offers": [{**o, "num_gpus": 0} for o in p["offers"]]})
    line = one_line_error(collect(emulator, tmp_path / "b.db"))
    assert "every one of the" in line and "num_gpus should be a whole number 1..16, got 0" in line
    assert not [r for r in caplog.records if "set aside" in r.getMessage()]  # the error says it, once
    prices, rows = stored(tmp_path / "b.db")
    assert prices == 0 and len(rows) == 1 and "every one of the" in rows[0][2]


@pytest.mark.parametrize("value", [None, 0], ids=["null", "zero"])
def test_a_search_with_no_price_on_any_offer_is_an_error_row_not_a_snapshot(emulator, tmp_path, value):
    """Every min_bid and dph_total null was stored as "24 quotes from 258 offers", every one without a price."""
    emulator.malform("vast:search", lambda p: {"offers": [{**o, "min_bid": value, "dph_total": value}
                                                          for o in p["offers"]]})
    line = one_line_error(collect(emulator, tmp_path / "b.db"))
    assert "not one of the" in line and "offers has a price" in line
    prices, rows = stored(tmp_path / "b.db")
    assert prices == 0 and len(rows) == 1 and rows[0][2].startswith("MalformedAnswer")


def test_a_price_at_the_cap_is_stored_and_round_trips_through_export_and_import(emulator, tmp_path):
    # $1000 per GPU-hour is the most a trace may state: an 8-GPU offer at $8000/h is just inside.
    emulator.malform("vast:search", lambda p: {"offers": [
        {**p["offers"][0], "gpu_name": "B200", "num_gpus": 8, "min_bid": 8000.0, "dph_total": 8000.0,
         "verification": "verified", "reliability": 0.99}, *p["offers"][1:]]})
    db = tmp_path / "b.db"
    result = collect(emulator, db)
    assert result.exit_code == 0, result.output + result.stderr
    runner = CliRunner()
    out, back = tmp_path / "t.csv", tmp_path / "back.csv"
    exported = runner.invoke(main, ["export", "--db", str(db), "--since", "all", "--market", "vast", "-o", str(out)])
    assert exported.exit_code == 0, exported.stderr
    assert "B200,1000.0,1000.0,VERIFIED,8," in out.read_text()
    imported = runner.invoke(main, ["import-trace", str(out), "--db", str(tmp_path / "c.db")])
    assert imported.exit_code == 0, imported.stderr
    again = runner.invoke(main, ["export", "--db", str(tmp_path / "c.db"), "--since", "all", "--market", "vast",
                                 "-o", str(back)])
    assert again.exit_code == 0 and back.read_text() == out.read_text()


# -- a search that fills its limit is paged to the whole market -----------------------------------

@pytest.fixture
def big():
    # 8,000 machines: 7,118 offers, more than one search's limit of 5,000 (cheapest dph_total first)
    with Emulator(seed=0, vast_machines=8000) as emu:
        yield emu


def test_a_market_larger_than_the_search_limit_is_collected_whole(big, tmp_path):
    whole = vast_client(big).search_offers(limit=100_000)
    assert len(whole) > DEFAULT_SEARCH_LIMIT
    result = collect(big, tmp_path / "b.db")
    assert result.exit_code == 0, result.output + result.stderr
    assert f"from {len(whole)} offers" in result.output
    with Store.open(tmp_path / "b.db") as store:
        got = [(q.gpu_type_id, q.cloud, q.gpu_count, q.minimum_bid_price, q.uninterruptable_price, q.offer_count)
               for q in store.latest_quotes("vast")]
        assert sorted(o["offer_id"] for o in store.offers_at()) == sorted(o.id for o in whole)
    want = [(q.gpu_type_id, q.cloud, q.gpu_count, q.minimum_bid_price, q.uninterruptable_price, q.offer_count)
            for q in summarize_offers(whole, big.now)]
    assert got == want
    assert ("H100 SXM", "VERIFIED", 8) in {k[:3] for k in got}   # among the dearest: cut off before


def test_the_client_pages_by_price_and_drops_the_offers_a_tie_repeats(emulator):
    requests: list[dict] = []
    http = httpx.Client(timeout=5.0, event_hooks={"request": [lambda r: requests.append(json.loads(r.content))]})
    whole = vast_client(emulator).search_offers(limit=100_000)
    paged = vast_client(emulator, http=http).search_offers(limit=100)
    assert paged.complete and paged.requests == len(requests) >= len(whole) / 100
    assert sorted(o.id for o in paged) == sorted(o.id for o in whole)   # each once, ties dropped
    floors = [r["dph_total"]["gte"] for r in requests[1:]]
    assert "dph_total" not in requests[0] and floors == sorted(floors) and floors[0] > 0
    cut = vast_client(emulator).search_offers(limit=100, max_pages=2)
    assert not cut.complete and cut.requests == 2 and len(cut) < len(whole)


def test_a_search_that_cannot_be_paged_whole_is_an_error_row_not_a_snapshot(big, tmp_path):
    first: dict = {}
    big.malform("vast:search", lambda p: first.setdefault("answer", p), times=None)  # ignores dph_total
    line = one_line_error(collect(big, tmp_path / "b.db"))
    assert "IncompleteAnswer" not in line and "the dearest offers are missing" in line
    prices, rows = stored(tmp_path / "b.db")
    assert prices == 0 and len(rows) == 1 and "IncompleteAnswer" in rows[0][2]


@pytest.mark.parametrize(("setting", "kept_first"), [(None, False), ("vast_offers_days = 10", True),
                                                     ("vast_offers_days = 0", True)])
def test_offers_older_than_vast_offers_days_are_deleted_as_a_collection_is_stored(emulator, tmp_path, monkeypatch,
                                                                                    setting, kept_first):
    # Every offer of every cycle is stored (about 120 MB a day at a 5-minute cycle) and nothing pruned
    # them: 44 GB a year. The default keeps 8 days; decisions read the last week.
    monkeypatch.chdir(tmp_path)
    if setting is not None:
        (tmp_path / "bidder.toml").write_text(setting + "\n")
    db = tmp_path / "b.db"
    assert collect(emulator, db).exit_code == 0
    first = emulator.now
    emulator.advance(9 * 86400)
    assert collect(emulator, db).exit_code == 0
    with Store.open(db) as store:
        stamps = [r[0] for r in store._rows("SELECT DISTINCT ts FROM offers ORDER BY ts", ())]
        assert store._rows("SELECT count(*) FROM prices", ())[0][0] > 0
    assert (to_iso(first) in stamps) is kept_first and to_iso(emulator.now) in stamps, stamps


def test_vast_offers_days_under_a_week_is_refused_in_one_line(emulator, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bidder.toml").write_text("vast_offers_days = 3\n")
    result = collect(emulator, tmp_path / "b.db")
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert "vast_offers_days" in line and "from 7" in line, line
