"""Neutral types shared by the collector, store, market statistics, optimizer and executor.

Nothing here knows RunPod: `bidder/runpod/` turns RunPod's answers into these types, so another
bid market can plug in through its own client. Money is USD per GPU-hour unless a name says
otherwise; bids are always per GPU. Timestamps are timezone-aware UTC `datetime`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "CLOUDS",
    "DEFAULT_MARKET",
    "MACHINE_HISTORY_DAYS",
    "MARKETS",
    "MARKET_CLOUDS",
    "MARKET_NAMES",
    "MAX_GPU_COUNT",
    "MAX_HOURS",
    "MAX_PRICE",
    "MAX_TOLERANCE",
    "MIN_PRICE",
    "PRICE_HISTORY_DAYS",
    "SILENCE_MIN_HOURS",
    "TOLERANCE_PRESETS",
    "Action",
    "Decision",
    "JobProgress",
    "JobSpec",
    "MarketKey",
    "Policy",
    "PriceQuote",
    "market_key",
    "market_of",
    "parse_tolerance",
]

#: RunPod's clouds. A JobSpec may also say "ANY".
CLOUDS: tuple[str, ...] = ("SECURE", "COMMUNITY")

#: Bid markets a quote can come from; a quote without one is RunPod's (all history before Vast).
MARKETS: tuple[str, ...] = ("runpod", "vast")
DEFAULT_MARKET = "runpod"
#: How each market is named to the user.
MARKET_NAMES: dict[str, str] = {"runpod": "RunPod", "vast": "Vast"}
#: The tiers ("clouds") of each market. Vast's tier is the offer's `verification` (data/README.md).
MARKET_CLOUDS: dict[str, tuple[str, ...]] = {"runpod": CLOUDS, "vast": ("VERIFIED", "UNVERIFIED")}

#: The most USD per hour of a pod or a GPU bidder believes a market (or a trace) that states it: no
#: true price comes near it. It keeps impossible numbers (1e300) out of the store and every later sum.
MAX_PRICE = 1000.0
#: The least USD per GPU-hour bidder believes a market states as a price (0 or less is the markets'
#: "none"): a tenth of a cent, Vast's smallest bid per instance-hour; the cheapest price in RunPod's
#: catalogue is $0.06. Stored, a floor of 1e-9 read as a 100% spot discount.
MIN_PRICE = 0.001
#: The most hours of work a job (or a command's --hours) may ask: past it a figure is a typo.
MAX_HOURS = 1_000_000.0
#: The most GPUs in one pod any market offers (and the collector records): --gpus, `gpus`, --gpu-counts.
MAX_GPU_COUNT = 16
#: Days of Vast offers a decision reads for its machines' pauses (a 72-hour half-life: a week); the
#: collector never keeps fewer (`vast_offers_days`).
MACHINE_HISTORY_DAYS = 7.0
#: Days of price history a decision reads (its statistics and the plan's models); the collector never
#: prunes closer than a day beyond it (`prices_days`).
PRICE_HISTORY_DAYS = 30.0
#: A time without priced samples at least this long is a silence: the collector, and the tick beside it,
#: did not run, or the market quoted no price at all (no capacity, spot or on-demand), so nothing could
#: act on it (a job waiting on its slack loses the whole of it).
#: Shorter gaps are left to the optimizer's deadline margin (half an hour) and its decision intervals.
SILENCE_MIN_HOURS = 1.0

#: A market's key: (gpu_type_id, cloud, gpu_count) for RunPod, as it always was, and
#: (gpu_type_id, cloud, gpu_count, market) for any other market (see `market_key`).
MarketKey = tuple[str, str, int] | tuple[str, str, int, str]


def market_key(gpu_type_id: str, cloud: str, gpu_count: int, market: str = DEFAULT_MARKET) -> MarketKey:
    """The key of one market in stats dicts and `Store.markets()`. RunPod's keeps its three-part
    shape so every existing caller, file and test reads it unchanged; other markets add their name."""
    if market == DEFAULT_MARKET:
        return (gpu_type_id, cloud, int(gpu_count))
    return (gpu_type_id, cloud, int(gpu_count), market)


def market_of(key: tuple[object, ...]) -> str:
    """The market named by a key from `market_key` (a three-part key is RunPod's)."""
    return str(key[3]) if len(key) > 3 else DEFAULT_MARKET

#: Interruption tolerance presets: the most expected interruptions per day a job accepts.
TOLERANCE_PRESETS: dict[str, float] = {"none": 0.0, "low": 0.5, "medium": 2.0, "high": 6.0}
#: The largest tolerance: an interruption every minute (prices step on a minute grid at best); past it
#: a figure is a typo, and inf turned off the interruption budget without a word.
MAX_TOLERANCE = 1440.0

Action = Literal["spot", "on_demand", "wait"]


def parse_tolerance(value: str | float) -> float:
    """A preset name ("none", "low", "medium", "high") or a number of interruptions per day."""
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value.strip().lower()
        if text in TOLERANCE_PRESETS:
            return TOLERANCE_PRESETS[text]
        try:
            number = float(text)
        except ValueError:
            names = ", ".join(TOLERANCE_PRESETS)
            raise ValueError(f"tolerance {value!r} is neither a preset ({names}) nor a number") from None
    if not 0 <= number <= MAX_TOLERANCE:  # (nan and inf too)
        raise ValueError(f"tolerance must be from 0 to {MAX_TOLERANCE:g} interruptions per day (one a minute), "
                         f"got {value!r}")
    return number


@dataclass(frozen=True)
class PriceQuote:
    """One market quote: what one GPU type costs in one cloud at one GPU count, at time `ts`.

    `minimum_bid_price` is the spot floor (None = no spot capacity right now, never 0);
    `uninterruptable_price` the on-demand price (None = no on-demand capacity). Both USD per GPU-hour.
    `market` is where it came from ("runpod" or "vast"); for Vast, `cloud` is the tier
    (VERIFIED / UNVERIFIED) and `offer_count` the number of offers the quote summarises.
    `storage_per_gb_month`: what the market bills for an instance's disk, USD per GB-month, whether
    the instance runs or not (Vast; None: no separate storage price), and `on_demand_storage_gb` the
    disk whose storage `uninterruptable_price` already includes (Vast's search prices one), at
    `on_demand_storage_per_gb_month`, the storage price of the offer behind that price (None: not
    known; `storage_per_gb_month` stands in). `spot_storage`: the storage price of the offer a spot bid
    rents, by bid: ((bid per GPU-hour from, USD per GB-month), ...), bids rising (Vast's launch rents,
    of the offers a bid wins, the one cheapest per useful hour, pauses counted: `bidder.vast.pick`); a bid under the
    first at the first's. Empty, or no bid known: `storage_per_gb_month`.
    """

    ts: datetime
    gpu_type_id: str
    cloud: str
    gpu_count: int
    minimum_bid_price: float | None
    uninterruptable_price: float | None
    stock_status: str | None = None
    available_gpu_counts: tuple[int, ...] = ()
    max_unreserved_gpu_count: int | None = None
    memory_in_gb: int | None = None
    display_name: str | None = None
    list_spot_price: float | None = None
    list_on_demand_price: float | None = None
    market: str = DEFAULT_MARKET
    offer_count: int | None = None
    storage_per_gb_month: float | None = None
    on_demand_storage_gb: float = 0.0
    on_demand_storage_per_gb_month: float | None = None
    spot_storage: tuple[tuple[float, float], ...] = ()

    @property
    def key(self) -> MarketKey:
        """This quote's market (see `market_key`)."""
        return market_key(self.gpu_type_id, self.cloud, self.gpu_count, self.market)

    @property
    def has_spot(self) -> bool:
        return self.minimum_bid_price is not None

    @property
    def spot_discount(self) -> float | None:
        """Share saved by bidding the floor instead of paying on-demand (0.4 = 40%)."""
        if self.minimum_bid_price is None or not self.uninterruptable_price:
            return None
        return 1.0 - self.minimum_bid_price / self.uninterruptable_price


@dataclass(frozen=True)
class JobSpec:
    """What the user needs.

    `work_hours` is running time needed at the reference speed (speed factor 1.0), in hours of a
    pod with `gpu_count` GPUs; None only when `keep_running` (a service with no end). `deadline`
    is absolute; None means no deadline. `restart_overhead_hours` is the work lost per
    interruption (time to resume plus work since the last checkpoint). `speed_factors` maps a GPU
    type to its speed relative to the reference (e.g. {"NVIDIA H100 80GB HBM3": 3.0}); types not
    named run at 1.0. `market` is "runpod", "vast" or "any" (the optimizer ranks across markets).
    `disk_gb`: the pod's disk, which a market with a storage price (Vast) bills on top of the GPU
    price (None: storage is not counted).
    """

    gpu_types: tuple[str, ...] = ()
    min_vram_gb: int | None = None
    gpu_count: int = 1
    cloud: str = "ANY"
    work_hours: float | None = None
    keep_running: bool = False
    deadline: datetime | None = None
    restart_overhead_hours: float = 10 / 60
    speed_factors: tuple[tuple[str, float], ...] = ()
    market: str = "any"
    disk_gb: float | None = None

    def speed_of(self, gpu_type_id: str) -> float:
        for name, factor in self.speed_factors:
            if name == gpu_type_id:
                return factor
        return 1.0


@dataclass(frozen=True)
class Policy:
    """How the user wants to pay.

    `max_price`: the most per GPU-hour, bid or on-demand (None = no cap of the user's own).
    `budget`: the most in USD for the whole job (None = no budget).
    `tolerance`: the most expected interruptions per day (0 = on-demand only; see TOLERANCE_PRESETS).
    `min_savings`: spot must beat the best on-demand candidate by this share, after overheads.
    `min_wait_savings`: a wait must save at least this share of the best thing that can start now.
    `allow_spot` / `allow_on_demand`: switch a kind of pod off entirely (e.g. spot retired).
    """

    max_price: float | None = None
    budget: float | None = None
    tolerance: float = TOLERANCE_PRESETS["medium"]
    min_savings: float = 0.15
    min_wait_savings: float = 0.05
    allow_spot: bool = True
    allow_on_demand: bool = True


@dataclass(frozen=True)
class JobProgress:
    """Where a running job stands, for re-deciding at a cron tick or a backtest step.

    `current_*` describe the pod the job has now (None = no pod); `spent` is USD so far.
    """

    work_done_hours: float = 0.0
    spent: float = 0.0
    interruptions: int = 0
    current_gpu_type_id: str | None = None
    current_cloud: str | None = None
    current_action: Action | None = None
    current_bid_per_gpu: float | None = None
    current_market: str | None = None
    #: What that pod, if on-demand, bills per GPU-hour (compute, as `max_price` caps it) when running: its
    #: own rate, not its market's quote (None: not known, or not its own, priced at the quote: a stopped
    #: RunPod pod resumes at the quote; a stopped Vast instance keeps its offer's price). A Vast instance rents
    #: an offer the quote then no longer lists: its $0.3485 read as the next offer's $0.3607, over a $0.35 cap.
    current_price_per_gpu: float | None = None
    #: A running Vast spot instance's own machine's minimum bid now, per GPU, as its poll reads it (None:
    #: not known, or not Vast). Its pauses are priced by its bid's premium over that, as they were
    #: measured, not over the market's floor (the cheapest offer listed), which moves as others rent and
    #: list: read over that, a $0.1645 instance that had run 1.75 h unpaused was 1.4% over a $0.162 floor
    #: (19.3 pauses a day), ended for on-demand, and rented again at the same bid 15 minutes later.
    current_machine_min_bid_per_gpu: float | None = None
    #: Whether that pod runs now (False: stopped or interrupted, so deciding on it resumes it): said in the
    #: reasons ("keeps the running pod" was said of a pod stopped 36 h).
    current_running: bool = True
    #: When the job started (None = unknown): with a deadline, the interruptions it has had come out of
    #: its window's budget of `tolerance` per day.
    started: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What to do now, with the numbers behind it.

    `expected_cost_per_hour` is USD per GPU-hour of useful work (restart losses included);
    `expected_total_cost` is USD for the remaining work (for keep-running jobs: per day).
    For `wait`, `act_below` is the spot floor at which it would act, `act_when` the whole condition in
    words (how long the floor must stay there first, e.g. "its spot floor has stayed at or below $0.133
    for 30 min"), and gpu_type_id/cloud name the market it is waiting on; `market` is the market ("runpod", "vast") of the pod or wait.
    `alternatives` are the other candidates weighed, best first.
    """

    action: Action
    gpu_type_id: str | None
    cloud: str | None
    gpu_count: int
    bid_per_gpu: float | None
    expected_cost_per_hour: float | None
    expected_interruptions_per_day: float
    expected_total_cost: float | None
    expected_completion_hours: float | None
    reasons: tuple[str, ...] = ()
    alternatives: tuple[Decision, ...] = field(default=(), compare=False)
    act_below: float | None = None
    market: str | None = None
    act_when: str | None = field(default=None, compare=False)
