"""Backtests: replay price history through the production optimizer and the simple rules people use.

`bidder backtest` runs on this package; it is numpy-heavy and never imported on the cron path.

- `types`: what the modules share (`Market`, `BacktestJob`, `HistoryView`); it imports none of them.
- `engine`: the replay (pay-as-bid billing, restart loss, future-blind views), the hindsight bound,
  rolling windows and the report (`run_backtest`, `BacktestJob`, `BacktestReport`).
- `history`: price history as aligned numpy arrays (`PriceHistory`, `load_trace`, `load_store`).
- `strategies`: bidder's own strategy (the real `bidder.optimizer.decide`) and the baselines.
- `optimum`: the exact offline optimum of the engine's model (a DP with lower and upper bounds).
- `charts`: matplotlib figures of a report (imported on its own: it loads matplotlib).

Exports the names below (`__all__`): the job, the history and its loaders, the replay, the
hindsight bound and the rolling-window report.
"""

from __future__ import annotations

from bidder.backtest.engine import (
    DEFAULT_WARMUP_HOURS,
    METRIC_KEYS,
    BacktestJob,
    BacktestReport,
    HistoryView,
    RunResult,
    Window,
    hindsight,
    replay,
    run_backtest,
    strategy_factory,
    window_starts,
)
from bidder.backtest.history import Market, PriceHistory, history_from_quotes, load_store, load_trace

__all__ = [
    "DEFAULT_WARMUP_HOURS",
    "METRIC_KEYS",
    "BacktestJob",
    "BacktestReport",
    "HistoryView",
    "Market",
    "PriceHistory",
    "RunResult",
    "Window",
    "hindsight",
    "history_from_quotes",
    "load_store",
    "load_trace",
    "replay",
    "run_backtest",
    "strategy_factory",
    "window_starts",
]
