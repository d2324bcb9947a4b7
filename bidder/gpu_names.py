"""GPU type names as the user writes them ("4090", "RTX A6000") -> RunPod's gpuTypeIds, one rule
for the command line (`--gpu`) and bidder.toml (`gpu = [...]`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from bidder.errors import ConfigError

__all__ = ["EMPTY_HINT", "resolve_gpu_types"]

EMPTY_HINT = ("collect a snapshot with `bidder collect` (or every 5 minutes from cron, see the README), "
              "or load history with `bidder import-trace FILE`")


def resolve_gpu_types(queries: Iterable[str], known: Mapping[str, str | None]) -> list[str]:
    """GPU type ids matching what the user typed: an exact id or display name (any case), else
    every id or name containing it. Raises ConfigError listing close matches when nothing fits."""
    out: list[str] = []
    for query in queries:
        text = query.strip().lower()
        exact = [i for i, name in known.items() if text in (i.lower(), (name or "").lower())]
        partial = [i for i, name in known.items() if text in i.lower() or text in (name or "").lower()]
        found = exact or partial
        if not found:
            labels = sorted(set(known) | {n for n in known.values() if n})
            # Compare with whole names and with their words ("4900" is close to "... RTX 4090").
            close = [label for label in labels
                     if difflib.get_close_matches(text, [label.lower(), *label.lower().split()], n=1, cutoff=0.7)]
            close = close[:5] or difflib.get_close_matches(query, labels, n=5, cutoff=0.5)
            hint = (f"close matches: {', '.join(close)}" if close else
                    f"{len(known)} types are known; `bidder prices` lists them" if known else
                    "no GPU types are known yet; " + EMPTY_HINT)
            raise ConfigError(f"unknown GPU type {query!r}; {hint}", key="gpu")
        out.extend(i for i in sorted(found) if i not in out)
    return out
