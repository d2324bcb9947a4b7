"""bidder: buys GPU time on bid markets (RunPod spot pods, Vast.ai interruptible instances) as cheaply
as the user's risk allows. Exports only `__version__`; import the parts from their modules.

Data runs one way through the house: the API clients (`runpod`, `vast`) fetch prices and pods; the
`collector` writes them into the `store` (one SQLite file: history and ledger); `market` turns a
floor history into statistics; the `optimizer` decides (pure; `advisor` feeds it from the store);
the `executor` carries a decision out and books it; `tick` runs one cron cycle of the managed
`jobs`; `cli` is the `bidder` command. Beside them: `sim` (the emulator, sharing only the neutral
types `models`, `units`, `errors`, `traces`), `backtest` and `report` (what users run off the cron
path), `demo`. `tests/test_architecture.py` holds the house to that order.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
