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
            # Ranked by likeness, best first ("RTX 4900" -> RTX 4090 before RTX 3090), not alphabetically.
            scored = sorted((-_likeness(text, label), label) for label in labels)
            close = [label for score, label in scored if -score >= 0.7][:5]
            close = close or difflib.get_close_matches(query, labels, n=5, cutoff=0.5)
            hint = (f"close matches: {', '.join(close)}" if close else
                    f"{len(known)} types are known; `bidder prices` lists them" if known else
                    "no GPU types are known yet; " + EMPTY_HINT)
            raise ConfigError(f"unknown GPU type {query!r}; {hint}", key="gpu")
        out.extend(i for i in sorted(found) if i not in out)
    return out


def _likeness(text: str, label: str) -> float:
    """How close what the user typed is to a name: the best ratio against the whole name or one of
    its words, a digit transposition ("4900" for "4090") scoring as a near match."""
    words = label.lower().split()
    best = max(difflib.SequenceMatcher(None, text, cand).ratio() for cand in (label.lower(), *words))
    typed = text.split()
    for t in typed:
        for w in words:
            if len(t) == len(w) > 1 and t != w and sorted(t) == sorted(w):
                diffs = [i for i in range(len(t)) if t[i] != w[i]]
                if len(diffs) == 2 and diffs[1] == diffs[0] + 1:
                    best = max(best, 0.95)  # two neighbouring characters swapped
    return best
