"""A RunPod snapshot is stored whole or not at all (the emulator over HTTP, answers spoiled with
`Emulator.malform`): a `lowestPrice` answer that leaves out fields it was asked for, or that prices
fewer GPU types than the catalogue lists in the same moment, is a MalformedAnswer (one error row,
nothing stored); GPU types RunPod really dropped (gone from both answers) are no error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from client_helpers import Recorder, one_line_error

from bidder.cli import main
from bidder.collector import collect_once
from bidder.errors import MalformedAnswer
from bidder.executor import SPOT_FLAG
from bidder.models import CLOUDS
from bidder.runpod import RetryPolicy, RunPodClient
from bidder.sim import TEST_API_KEY
from bidder.store import Store

KEEP = 3


def collect(emu, db):
    return CliRunner(env={"RUNPOD_API_KEY": TEST_API_KEY}).invoke(
        main, ["collect", "--market", "runpod", "--db", str(db), "--api-url", emu.url, "--retries", "1"])


def without_prices(payload):
    """Every lowestPrice object with its two price fields left out (absent, not null)."""
    drop = {"minimumBidPrice", "uninterruptablePrice"}
    return {"data": {"gpuTypes": [
        {k: ({f: x for f, x in v.items() if f not in drop} if isinstance(v, dict) else v) for k, v in t.items()}
        for t in payload["data"]["gpuTypes"]]}}


def first_types(payload):
    return {"data": {"gpuTypes": payload["data"]["gpuTypes"][:KEEP]}}


def rows(db) -> tuple[int, list[tuple], str | None]:
    with Store.open(db) as store:
        prices = store._rows("SELECT count(*) FROM prices", ())[0][0]
        collections = [tuple(r) for r in store._rows("SELECT quotes, error FROM collections ORDER BY id", ())]
        return prices, collections, store.settings_get(SPOT_FLAG)


@pytest.mark.parametrize("spoil", [
    without_prices,
    lambda p: {"data": {"gpuTypes": [{k: v for k, v in t.items() if k != "community1"}
                                     for t in p["data"]["gpuTypes"]]}},
], ids=["price-fields", "alias"])
def test_a_snapshot_without_fields_it_asked_for_is_malformed(emulator, tmp_path, spoil):
    emulator.malform("lowestPrices", spoil)
    line = one_line_error(collect(emulator, tmp_path / "b.db"))
    assert "lowestPrice" in line and "missing" in line
    prices, collections, flag = rows(tmp_path / "b.db")
    assert prices == 0 and len(collections) == 1 and collections[0][1] and flag is None


def test_the_client_refuses_absent_price_fields_but_reads_nulls(emulator, client):
    emulator.malform("lowestPrices", without_prices)
    with pytest.raises(MalformedAnswer, match="missing field"):
        client.lowest_prices((1,), CLOUDS, ts=emulator.now)
    emulator.malform("lowestPrices", lambda p: {"data": {"gpuTypes": [
        {k: ({**v, "minimumBidPrice": None} if isinstance(v, dict) else v) for k, v in t.items()}
        for t in p["data"]["gpuTypes"]]}})
    assert all(q.minimum_bid_price is None for q in client.lowest_prices((1,), CLOUDS, ts=emulator.now))


def test_a_snapshot_cut_short_of_the_catalogue_asked_with_it_is_malformed(emulator, tmp_path):
    emulator.malform("lowestPrices", first_types)
    line = one_line_error(collect(emulator, tmp_path / "b.db"))
    assert f"priced {KEEP} GPU types" in line and f"lists {len(emulator.world.gpu_types) - KEEP} more" in line
    prices, collections, _ = rows(tmp_path / "b.db")
    assert prices == 0 and len(collections) == 1 and collections[0][1]


def runpod(emulator, recorder: Recorder) -> RunPodClient:
    return RunPodClient(api_key=TEST_API_KEY, url=emulator.url, retry=RetryPolicy(attempts=1), http=recorder.http)


def sent(recorder: Recorder) -> list[str]:
    return [b["query"].split()[1].split("(")[0] for b in recorder.bodies]


def test_a_cut_snapshot_between_catalogue_refreshes_is_checked_against_the_catalogue_now(emulator, tmp_path):
    recorder = Recorder()
    with Store.open(tmp_path / "b.db") as store:
        collect_once(runpod(emulator, recorder), store, now=emulator.now)   # snapshot + daily catalogue
        emulator.advance(300)
        emulator.malform("lowestPrices", first_types)
        with pytest.raises(MalformedAnswer, match="cut answer"):
            collect_once(runpod(emulator, recorder), store, now=emulator.now)
        assert sent(recorder) == ["lowestPrices", "gpuTypes", "lowestPrices", "gpuTypes"]
        assert [r["error"] is None for r in store.collections()] == [False, True]  # newest first
    recorder.close()


def test_gpu_types_runpod_dropped_are_stored_and_cost_one_request_once(emulator, tmp_path):
    recorder = Recorder()
    total = len(emulator.world.gpu_types)
    with Store.open(tmp_path / "b.db") as store:
        collect_once(runpod(emulator, recorder), store, now=emulator.now)
        emulator.malform("lowestPrices", first_types, times=None)
        emulator.malform("gpuTypes", first_types, times=None)   # gone from the catalogue too: really dropped
        for _ in range(2):
            emulator.advance(300)
            result = collect_once(runpod(emulator, recorder), store, now=emulator.now)
            assert result.errors == {} and result.quotes == KEEP * len(CLOUDS)
        # the first cycle after the drop asks the catalogue once; the next one prices alone
        assert sent(recorder) == ["lowestPrices", "gpuTypes", "lowestPrices", "gpuTypes", "lowestPrices"]
        assert len(store.latest_quotes("runpod")) == KEEP * len(CLOUDS)
        assert len(store.price_history()) == total * len(CLOUDS) + 2 * KEEP * len(CLOUDS)
    recorder.close()


def priced(value, keep: int = 0):
    """Every lowestPrice object with both prices set to `value` (null, 0), but for the first `keep` GPU types."""
    def spoil(payload):
        types = payload["data"]["gpuTypes"]
        return {"data": {"gpuTypes": types[:keep] + [
            {k: ({**v, "minimumBidPrice": value, "uninterruptablePrice": value} if isinstance(v, dict) else v)
             for k, v in t.items()} for t in types[keep:]]}}
    return spoil


@pytest.mark.parametrize("value", [None, 0], ids=["null", "zero"])
def test_an_answer_with_no_price_anywhere_is_malformed_and_the_last_snapshot_stays(emulator, tmp_path, value):
    """Every floor and on-demand price null (or 0, RunPod's "none") was stored as a snapshot of 76 quotes
    without a price: until the next good cycle `recommend` and the tick saw the whole market gone."""
    db = tmp_path / "b.db"
    assert collect(emulator, db).exit_code == 0
    emulator.advance(600)
    emulator.malform("lowestPrices", priced(value))
    line = one_line_error(collect(emulator, db))
    assert "not one of the" in line and "has a price" in line
    prices, collections, _ = rows(db)
    assert len(collections) == 2 and collections[1][0] == 0 and collections[1][1].startswith("MalformedAnswer")
    with Store.open(db) as store:
        newest = store.latest_quotes("runpod")
        assert len(newest) == prices and any(q.minimum_bid_price for q in newest)


def test_gpu_types_sold_out_beside_one_with_a_price_are_a_snapshot(emulator, tmp_path):
    # A type with no floor and no on-demand is sold out (the optimizer reads it so): only an answer where
    # no market at all has a price is refused.
    emulator.malform("lowestPrices", priced(None, keep=1))
    result = collect(emulator, tmp_path / "b.db")
    assert result.exit_code == 0, result.output + result.stderr
    with Store.open(tmp_path / "b.db") as store:
        quotes = store.latest_quotes("runpod")
        assert 0 < len({q.gpu_type_id for q in quotes if q.minimum_bid_price or q.uninterruptable_price}) <= 1


@pytest.mark.parametrize("value", [1e-9, 0.0009])
def test_a_price_below_a_tenth_of_a_cent_is_malformed(emulator, tmp_path, value):
    # A floor of 1e-9 was stored: `prices` showed 0.000 and a 100% spot discount.
    emulator.malform("lowestPrices", lambda p: {"data": {"gpuTypes": [
        {**p["data"]["gpuTypes"][0], **{k: {**v, "minimumBidPrice": value}
                                        for k, v in p["data"]["gpuTypes"][0].items() if isinstance(v, dict)}},
        *p["data"]["gpuTypes"][1:]]}})
    line = one_line_error(collect(emulator, tmp_path / "b.db"))
    assert "minimumBidPrice" in line and "0.001" in line
    prices, collections, _ = rows(tmp_path / "b.db")
    assert prices == 0 and len(collections) == 1 and collections[0][1]
