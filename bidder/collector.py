"""The price collector: one snapshot of every market per cycle, stored in one transaction.

A cycle asks each market source once: RunPod with ONE `lowestPrice` request (every GPU type × both
clouds × the configured GPU counts, through GraphQL aliases) plus a `gpuTypes` catalogue refresh at
most daily (and when types its last refresh listed are missing from the prices: a cut answer, or
types RunPod dropped); Vast with ONE offer search (every offer), stored whole in `offers` and reduced to one
quote per (GPU name, GPU count, tier) by `bidder.vast.summary.summarize_offers`. All quotes of a
cycle share one timestamp and go to the store in one transaction, with one `collections` row per
market. A failed market writes only its `collections` row with the error (never part of a
snapshot) and does not block the other; `collect_markets` raises only when every market failed,
`collect_once` (RunPod alone) raises the API error as it always did. A failure whose only time is
the wall clock's fallback, in a database on the emulator's clock, writes no row at all: its time
would be wrong (see `collect_markets`).

When RunPod no longer serves the spot price fields (the client then asks without them), the
snapshot is stored with NULL floors and the store setting `spot_unsupported_since` (the
executor reads it: no spot offered until spot prices show again) is written, once.

    result = collect_once(client, store, now=datetime.now(UTC), gpu_counts=(1, 2))
    result = collect_markets([RunPodSource(client), VastSource(vast_client)], store, now=now)
    run_every(300, lambda t: collect_once(client, store, now=t), now=clock, sleep=time.sleep)

`run_every` runs cycles aligned to multiples of the interval (no drift), retries failed cycles
with exponential backoff inside the interval (honouring Retry-After), and takes `now`/`sleep` so
tests drive it on the emulator's virtual clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bidder.errors import (
    ApiError,
    AuthError,
    BidderError,
    IncompleteAnswer,
    MalformedAnswer,
    RateLimited,
    StoreBusy,
    TimeRunsBackwards,
)
from bidder.models import CLOUDS, MACHINE_HISTORY_DAYS, PriceQuote
from bidder.store import SPOT_UNSUPPORTED_SINCE as SPOT_FLAG
from bidder.store import Store
from bidder.units import to_iso
from bidder.vast.offers import Offer
from bidder.vast.summary import OfferFilters, summarize_offers

__all__ = ["DEFAULT_OFFERS_DAYS", "GPU_TYPES_MAX_AGE", "MIN_OFFERS_DAYS", "SPOT_FIELDS_GONE_MESSAGE", "CycleResult", "HeldRunPodSource", "HeldVastSource",
           "LoopStats", "MarketFetch", "MarketResult", "MarketSource", "OfferSearch", "PriceClient", "RunPodSource", "VastSource", "as_source", "collect_markets",
           "collect_once", "cycle_time", "run_every"]

log = logging.getLogger(__name__)

#: Days of Vast's offers kept (bidder.toml's `vast_offers_days`): every offer of every cycle is stored,
#: about 120 MB a day at a 5-minute cycle; decisions read the last MACHINE_HISTORY_DAYS (a week).
DEFAULT_OFFERS_DAYS = 8.0
MIN_OFFERS_DAYS = MACHINE_HISTORY_DAYS

#: The catalogue (names, VRAM, list prices) changes rarely: refresh it at most this often.
GPU_TYPES_MAX_AGE = timedelta(days=1)
SPOT_FIELDS_GONE_MESSAGE = ("RunPod no longer reports spot prices (its API refuses the spot price fields); "
                            "on-demand prices are still being recorded")


class PriceClient(Protocol):
    """What the collector needs of `bidder.runpod.RunPodClient`."""

    def lowest_prices(self, gpu_counts: Sequence[int] = ..., clouds: Sequence[str] = ..., *,
                      ts: datetime) -> list[PriceQuote]: ...

    def gpu_types(self) -> list[Any]: ...

    @property
    def spot_fields_supported(self) -> bool | None: ...


class OfferSearch(Protocol):
    """What the collector needs of Vast's client: one search returning every offer."""

    def search_offers(self) -> list[Offer]: ...


@dataclass(frozen=True)
class MarketFetch:
    """One market's answer in one cycle, before it is stored."""

    quotes: list[PriceQuote]
    gpu_types: list[Any] | None = None
    offers: list[Offer] | None = None
    #: Offers stored before this are deleted with the cycle's (None: all kept).
    offers_since: datetime | None = None


class MarketSource(Protocol):
    """One market for the collector: its name, and one fetch per cycle (raises ApiError on failure)."""

    market: str

    def fetch(self, store: Store, ts: datetime) -> MarketFetch: ...


class RunPodSource:
    """RunPod through its client: one `lowestPrice` request, the catalogue at most daily."""

    market = "runpod"

    def __init__(self, client: PriceClient, gpu_counts: Sequence[int] = (1,), clouds: Sequence[str] = CLOUDS,
                 gpu_types_max_age: timedelta = GPU_TYPES_MAX_AGE) -> None:
        self.client, self.gpu_counts, self.clouds = client, tuple(gpu_counts), tuple(clouds)
        self.gpu_types_max_age = gpu_types_max_age

    def fetch(self, store: Store, ts: datetime) -> MarketFetch:
        quotes = _one_of_each(self.client.lowest_prices(self.gpu_counts, self.clouds, ts=ts),
                              lambda q: q.key, "lowestPrice", "GPU type, cloud and count")
        if not quotes:  # RunPod always lists its GPU types: an empty answer is a wrong one, not a market
            raise MalformedAnswer("lowestPrice: the answer listed no GPU types (an empty catalogue is not a "
                                  "price snapshot)", operation="lowestPrice")
        if not any(q.minimum_bid_price is not None or q.uninterruptable_price is not None for q in quotes):
            # One type sold out is a market (the optimizer reads it so); all of them at once is a wrong
            # answer: stored, it hid the history and the tick saw the whole market gone.
            raise MalformedAnswer(f"lowestPrice: not one of the {len(quotes)} GPU types, clouds and counts has a price "
                                  "(every floor and on-demand price null or 0): not a price snapshot",
                                  operation="lowestPrice")
        catalogue = None
        refreshed = store.gpu_types_updated()
        if refreshed is None or ts - refreshed >= self.gpu_types_max_age:
            catalogue = self._catalogue()
        priced = {q.gpu_type_id for q in quotes}
        if catalogue is None and refreshed is not None:
            # Types the catalogue listed at its last refresh, missing from the prices: RunPod dropped
            # them, or the answer was cut. The catalogue, asked now, tells which (one more request).
            listed = {g.id for g in store.gpu_type_infos() if g.updated == refreshed}
            if listed - priced:
                catalogue = self._catalogue()
        missing = sorted({g.id for g in catalogue or ()} - priced)
        if missing:  # both answers list `gpuTypes` seconds apart: a type in one only is a cut answer
            raise MalformedAnswer(
                f"lowestPrice: the answer priced {len(priced)} GPU types, but the catalogue (gpuTypes) asked in the "
                f"same cycle lists {len(missing)} more ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}):"
                " a cut answer is not a snapshot", operation="lowestPrice")
        return MarketFetch(quotes=quotes, gpu_types=catalogue)

    def _catalogue(self) -> list[Any] | None:
        try:
            return self.client.gpu_types()
        except ApiError as exc:
            # The snapshot is stored without it; the next cycle tries the catalogue again.
            log.warning("gpu_types refresh failed (prices stored anyway): %s", describe(exc))
            return None


class VastSource:
    """Vast through anything with `search_offers()`: one search, every offer kept, reduced to quotes
    per (GPU name, GPU count, tier) among the offers passing `filters`."""

    market = "vast"

    def __init__(self, client: OfferSearch, filters: OfferFilters | None = None,
                 offers_days: float = DEFAULT_OFFERS_DAYS) -> None:
        self.client = client
        self.filters = filters or OfferFilters()
        self.offers_days = offers_days  # days of offers kept (0: all)

    def fetch(self, store: Store, ts: datetime) -> MarketFetch:
        found = self.client.search_offers()
        offers = _one_of_each(list(found), lambda o: o.id, "search", "offer id")
        if not offers:  # the whole market, unfiltered: none at all is a wrong answer, not a market
            raise MalformedAnswer("search: the answer listed no offers at all (an empty market is not a price "
                                  "snapshot)", operation="search")
        if not any(o.min_bid is not None or o.dph_total is not None for o in offers):  # (as RunPod's, above)
            raise MalformedAnswer(f"search: not one of the {len(offers):,} offers has a price (every min_bid and "
                                  "dph_total null or 0): not a price snapshot", operation="search")
        if getattr(found, "complete", True) is False:
            # The dearest offers were cut off: stored, their GPU types and counts would read as gone.
            raise IncompleteAnswer(f"search: {len(offers):,} offers in {getattr(found, 'requests', 1)} searches and "
                                   f"the last still filled its limit: the dearest offers are missing, so this is not "
                                   f"a snapshot of the market", operation="search")
        since = ts - timedelta(days=self.offers_days) if self.offers_days > 0 else None
        return MarketFetch(quotes=summarize_offers(offers, ts, self.filters), offers=offers, offers_since=since)


class _Held:
    """A market source that keeps its first answer (or ApiError) and gives it to every later fetch, with
    no second request: `bidder launch` fetches first (`hold`), plans on the answer with nothing of it
    stored in the user's database, and stores the same answer once the launch is accepted."""

    _answer: MarketFetch | ApiError | None = None

    def hold(self, store: Store, now: datetime) -> MarketFetch | ApiError:
        """The answer of a cycle at `now` (asked now, unless held already)."""
        try:
            return self.fetch(store, cycle_time(now))
        except ApiError as exc:
            return exc

    def fetch(self, store: Store, ts: datetime) -> MarketFetch:
        if self._answer is None:
            try:
                self._answer = super().fetch(store, ts)  # type: ignore[misc]
            except ApiError as exc:
                self._answer = exc
        if isinstance(self._answer, ApiError):
            raise self._answer
        return self._answer


class HeldRunPodSource(_Held, RunPodSource):
    """RunPod's source, its answer held (`_Held`)."""


class HeldVastSource(_Held, VastSource):
    """Vast's source, its answer held (`_Held`)."""


def cycle_time(now: datetime) -> datetime:
    """The time a cycle at `now` stamps its rows with (whole seconds, UTC)."""
    return now.astimezone(UTC).replace(microsecond=0)


def _one_of_each(items: list[Any], key: Callable[[Any], object], operation: str, what: str) -> list[Any]:
    """`items` with exact repeats dropped; two different items under one key make the answer malformed:
    stored, the last silently replaced the first (a repeated RTX A6000 at $0.001 became SECURE's floor,
    and a repeated Vast offer's min_bid of $0.0001 the RTX 3090's), and the snapshot counted both."""
    seen: dict[object, Any] = {}
    for item in items:
        k = key(item)
        if k in seen and seen[k] != item:
            raise MalformedAnswer(f"{operation}: the answer lists {what} {k!r} twice, with different values: "
                                  "not a snapshot of the market", operation=operation)
        seen.setdefault(k, item)
    return list(seen.values()) if len(seen) < len(items) else items


@dataclass(frozen=True)
class MarketResult:
    """One market's part of a cycle: quotes stored (0 when it failed), distinct (GPU type, cloud/tier)
    among them, its `collections` row (0: a failure not recorded, see `collect_markets`), the offers
    seen (Vast), its error."""

    market: str
    quotes: int
    duration_s: float
    collection_id: int
    offers: int | None = None
    gpu_types_refreshed: int | None = None
    error: str | None = None
    markets: int = 0
    #: The ApiError of a failed market (its `error` is this, described).
    exception: ApiError | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CycleResult:
    """What one cycle stored. `duration_s` is the wall time of the API calls and the write.
    `spot_prices` is False when RunPod no longer serves the spot price fields (every floor NULL);
    `spot_flag_set` when this cycle wrote the `spot_unsupported_since` setting. `by_market` has one
    entry per market source, failed ones with their error; `collection_id` is the first market's row."""

    ts: datetime
    quotes: int
    markets: int
    gpu_types_refreshed: int | None
    duration_s: float
    collection_id: int
    spot_prices: bool = True
    spot_flag_set: bool = False
    by_market: tuple[MarketResult, ...] = ()

    @property
    def errors(self) -> dict[str, str]:
        """Market -> error of each market that failed in this cycle."""
        return {m.market: m.error for m in self.by_market if m.error is not None}


def describe(exc: BaseException) -> str:
    """One line for the `collections.error` column: the error class and its message (never the key)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def collect_once(client: PriceClient, store: Store, *, now: datetime, gpu_counts: Sequence[int] = (1,),
                 clouds: Sequence[str] = CLOUDS, gpu_types_max_age: timedelta = GPU_TYPES_MAX_AGE,
                 timer: Callable[[], float] = time.perf_counter) -> CycleResult:
    """Run one RunPod collector cycle at `now` and store it; raises the ApiError of a failed cycle
    after recording it. `timer` only measures the cycle's duration (it is not market time)."""
    return collect_markets([RunPodSource(client, gpu_counts, clouds, gpu_types_max_age)], store, now=now,
                           timer=timer)


def as_source(item: Any, *, gpu_counts: Sequence[int] = (1,), vast_filters: OfferFilters | None = None
              ) -> MarketSource:
    """A market source from a source, a RunPod client (`lowest_prices`) or a Vast client (`search_offers`)."""
    if hasattr(item, "fetch") and hasattr(item, "market"):
        return item  # type: ignore[no-any-return]
    if hasattr(item, "search_offers"):
        return VastSource(item, vast_filters)
    if hasattr(item, "lowest_prices"):
        return RunPodSource(item, gpu_counts)
    raise BidderError(f"{type(item).__name__} is not a market source (no lowest_prices or search_offers)")


def collect_markets(sources: Sequence[Any], store: Store, *, now: datetime,
                    timer: Callable[[], float] = time.perf_counter, raise_if_all_failed: bool = True,
                    warn_spot_gone: bool = True, prices_days: float = 0.0) -> CycleResult:
    """One cycle over several markets at `now`: one request per market, then every market's rows
    (snapshot or error row, unless no API time is known: see below) in one transaction. A failed
    market does not block the others; when
    every market failed, the first one's ApiError is raised (after the error rows are stored),
    unless `raise_if_all_failed` is False: then the result names every failure (`by_market`).
    `warn_spot_gone`: log a warning when this cycle marks spot unsupported (False: the caller
    says so itself, from `spot_prices` / `spot_flag_set`). `prices_days` (bidder.toml's, 0: keep all):
    a market whose snapshot is stored loses its prices and cycles older than that many days."""
    if not sources:
        raise BidderError("no market to collect: configure a RunPod or Vast API key")
    ts = cycle_time(now)
    started = timer()
    fetched: list[tuple[MarketSource, MarketFetch | ApiError, float]] = []
    for item in sources:
        source = as_source(item)
        begun = timer()
        try:
            answer: MarketFetch | ApiError = source.fetch(store, ts)
        except ApiError as exc:
            answer = exc
        fetched.append((source, answer, timer() - begun))
    results: list[MarketResult] = []
    # A failure is stamped with the cycle's time. On the wall clock in a database the emulator's clock
    # stamped, that time is only the fallback of a command that could not ask the emulator (it never
    # answered): it would sit months off the history, so no row is written (the caller still has the
    # error). Against RunPod the wall clock is the API's own, and the failure is recorded.
    untimed = store.clock == "wall" and store.emulator_time() is not None
    with store.transaction():
        for source, answer, took in fetched:
            if isinstance(answer, ApiError):
                row = 0 if untimed else store.record_collection(ts, [], duration_s=took, error=describe(answer),
                                                                market=source.market)
                results.append(MarketResult(source.market, 0, took, row, error=describe(answer), exception=answer))
                continue
            row = store.record_collection(ts, answer.quotes, duration_s=took, gpu_types=answer.gpu_types,
                                          market=source.market, offers=answer.offers, offers_since=answer.offers_since)
            if prices_days > 0:
                store.prune_prices(source.market, ts - timedelta(days=prices_days))
            results.append(MarketResult(source.market, len(answer.quotes), took, row,
                                        offers=None if answer.offers is None else len(answer.offers),
                                        gpu_types_refreshed=None if answer.gpu_types is None
                                        else len(answer.gpu_types),
                                        markets=len({(q.gpu_type_id, q.cloud) for q in answer.quotes})))
    failures = [a for _, a, _ in fetched if isinstance(a, ApiError)]
    if len(failures) == len(fetched) and raise_if_all_failed:
        raise failures[0]
    spot_prices, flag_set = True, False
    for source, answer, _ in fetched:
        if isinstance(source, RunPodSource) and not isinstance(answer, ApiError):
            spot_prices = source.client.spot_fields_supported is not False
            if not spot_prices and store.settings_get(SPOT_FLAG) is None:
                store.settings_set(SPOT_FLAG, to_iso(ts), ts=ts)
                flag_set = True
                (log.warning if warn_spot_gone else log.info)("%s. Spot is marked unsupported from %s (%s): on-demand only.",
                            SPOT_FIELDS_GONE_MESSAGE, to_iso(ts), SPOT_FLAG)
    quotes = [q for _, a, _ in fetched if not isinstance(a, ApiError) for q in a.quotes]
    markets = len({(q.market, q.gpu_type_id, q.cloud) for q in quotes})
    refreshed = [r.gpu_types_refreshed for r in results if r.gpu_types_refreshed is not None]
    return CycleResult(ts=ts, quotes=len(quotes), markets=markets,
                       gpu_types_refreshed=refreshed[0] if refreshed else None,
                       duration_s=timer() - started, collection_id=results[0].collection_id,
                       spot_prices=spot_prices, spot_flag_set=flag_set, by_market=tuple(results))


@dataclass
class LoopStats:
    """Counters of a `run_every` loop (updated in place, so they survive a Ctrl-C)."""

    slots: int = 0
    ok: int = 0
    failures: int = 0
    skipped_slots: int = 0
    last_error: str | None = None


def _epoch(value: datetime) -> float:
    return value.timestamp()


def run_every(interval_s: float, cycle: Callable[[datetime], object], *, now: Callable[[], datetime],
              sleep: Callable[[float], object], max_cycles: int | None = None,
              backoff_initial_s: float = 15.0, backoff_max_s: float | None = None,
              on_error: Callable[[BaseException, float | None], object] | None = None,
              stats: LoopStats | None = None) -> LoopStats:
    """Call `cycle(now())` at every multiple of `interval_s` (epoch-aligned: a 5-minute loop runs
    at :00, :05, ...), for `max_cycles` slots or until interrupted.

    A cycle that raises ApiError is retried inside its slot after 15 s, 30 s, 60 s... (at least
    the server's Retry-After), never past the next slot; the delay keeps growing over consecutive
    failures (up to `backoff_max_s`, default the interval) and resets on success. Slots that pass
    while waiting are skipped, never run in a burst. StoreBusy (another bidder held the database's
    write lock past the busy timeout, e.g. a long `import-trace`) is tried again at the next slot: the
    timeout already waited inside this one; so is TimeRunsBackwards (a clock behind the newest data:
    an emulator restarted, a wall clock stepped back, may catch up with it). AuthError (a wrong key) and other errors (a full disk, a
    corrupt file: a person must act) end the loop. `on_error(exc, retry_in_s or None)` hears each failure.
    """
    if interval_s <= 0 or not math.isfinite(interval_s):
        raise BidderError(f"the collection interval must be a positive number of seconds, got {interval_s!r}")
    stats = stats if stats is not None else LoopStats()
    backoff_max = backoff_max_s if backoff_max_s is not None else interval_s
    delay = backoff_initial_s
    last_slot: int | None = None
    not_before = -math.inf
    while max_cycles is None or stats.slots < max_cycles:
        t = _epoch(now())
        slot = max(math.ceil(max(t, not_before) / interval_s - 1e-9),
                   last_slot + 1 if last_slot is not None else -math.inf)
        if last_slot is not None and slot > last_slot + 1:
            stats.skipped_slots += int(slot - last_slot - 1)
        wait = slot * interval_s - t
        if wait > 0:
            sleep(wait)
        last_slot = int(slot)
        slot_end = (slot + 1) * interval_s
        stats.slots += 1
        while True:
            try:
                cycle(now())
            except AuthError:
                raise
            except (StoreBusy, TimeRunsBackwards) as exc:
                # Tried at the next slot: the timeout already waited inside this one; a clock stepped
                # back (an emulator restarted, a wall clock corrected) may catch up with the data.
                stats.failures += 1
                stats.last_error = describe(exc)
                if on_error is not None:
                    on_error(exc, None)
                break
            except ApiError as exc:
                stats.failures += 1
                stats.last_error = describe(exc)
                retry_in = delay
                if isinstance(exc, RateLimited) and exc.retry_after:
                    retry_in = max(retry_in, float(exc.retry_after))
                delay = min(delay * 2, backoff_max)
                t = _epoch(now())
                if t + retry_in >= slot_end:
                    not_before = t + retry_in  # the next slot's cycle is the retry
                    if on_error is not None:
                        on_error(exc, None)
                    break
                if on_error is not None:
                    on_error(exc, retry_in)
                sleep(retry_in)
                continue
            stats.ok += 1
            delay = backoff_initial_s
            break
    return stats
