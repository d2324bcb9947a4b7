"""GPU type names as the user writes them ("4090", "RTX A6000") -> RunPod's gpuTypeIds, one rule
for the command line (`--gpu`) and bidder.toml (`gpu = [...]`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping

from bidder.errors import ConfigError

__all__ = ["EMPTY_HINT", "check_gpu_ids", "resolve_gpu_types", "same_cards", "several_named"]

EMPTY_HINT = ("collect a snapshot with `bidder collect` (or every 5 minutes from cron, see the README), "
              "or load history with `bidder import-trace FILE`")


def resolve_gpu_types(queries: Iterable[str], known: Mapping[str, str | None], *,
                      none_known: str | None = None, listed: str | None = None) -> list[str]:
    """GPU type ids matching what the user typed: an exact id or display name (any case), else
    every id or name containing it from a word's edge to a word's edge, letters turning to digits
    counting as one (`_names_part`: "A100" names the A100s, "6000" the RTX A6000 and the RTX 6000 Ada;
    "RTX A40" is not the RTX A4000: a type bought by digits that run on is another GPU than the one
    meant). Raises ConfigError listing close matches when nothing fits
    (`none_known`: what to say instead when no type is known at all; `listed`: where the known types
    are listed, when none is close: `bidder prices` by default)."""
    out: list[str] = []
    for query in queries:
        text = query.strip().lower()
        exact = [i for i, name in known.items() if text in (i.lower(), (name or "").lower())]
        partial = [i for i, name in known.items() if _names_part(text, i.lower()) or _names_part(text, (name or "").lower())]
        # "rtx4090", "A100-SXM4": the name as written without its spaces, dashes or underscores (an
        # error whose close match was that very name made the user retype it).
        bare = [i for i, name in known.items() if _bare(text) and _bare(text) in (_bare(i), _bare(name or ""))]
        found = exact or partial or bare
        if not found:
            hint = none_known if none_known is not None and not known else _hint(_close(query, known), known, listed)
            raise ConfigError(f"unknown GPU type {query!r}; {hint}", key="gpu")
        out.extend(i for i in sorted(found) if i not in out)
    return out


def _bare(name: str) -> str:
    """`name` in lower case without spaces, dashes and underscores."""
    return re.sub(r"[\s_-]+", "", name.lower())


def _names_part(text: str, name: str) -> bool:
    """Whether `text` is a part of `name` that starts and ends where a word does, or where letters turn
    to digits or back: "6000" in "RTX A6000" and "RTX 6000Ada", "A100 SXM" in "A100 SXM4", "4080" in
    "RTX 4080S"; not "A40" in "RTX A4000" nor "L4" in "L40S" (digits run on), nor "RT" in "RTX"."""
    start = name.find(text)
    while start >= 0:
        end = start + len(text)
        if _edge(name, start) and _edge(name, end):
            return True
        start = name.find(text, start + 1)
    return False


def _edge(name: str, i: int) -> bool:
    """Whether position `i` of `name` is a word's edge: the name's start or end, beside a character that
    is not a letter or digit, or between a letter and a digit."""
    if i == 0 or i == len(name):
        return True
    a, b = name[i - 1], name[i]
    return not (a.isdigit() and b.isdigit()) and not (a.isalpha() and b.isalpha())


def several_named(queries: Iterable[str], known: Mapping[str, str | None], *, shown: int = 5) -> list[str]:
    """A note for each name the user typed that matched several GPU types by part ("'3090' names 2 GPU
    types: ..."): a job accepts each of them, and the one bought may not be the card meant ("6000" is
    the RTX 6000 Ada, not the A6000). Exact names and names matching one type need no note."""
    notes = []
    for query in queries:
        try:
            found = resolve_gpu_types([query], known)
        except ConfigError:
            continue
        text = query.strip().lower()
        # One card on two markets (RunPod's "NVIDIA RTX A6000", Vast's "RTX A6000"; RunPod's "A100 SXM",
        # Vast's "A100 SXM4") is one type here: the count is of cards, not of names.
        names = [_label(card, known) for card in same_cards(found, known)]
        if len(names) < 2 or any(text in (i.lower(), (known.get(i) or "").lower()) for i in found):
            continue
        listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
        notes.append(f"{query!r} names {len(names)} GPU types: {listed}; the job accepts each (give a full name "
                     "to choose one)")
    return notes


def _label(card: list[str], known: Mapping[str, str | None]) -> str:
    """A card's display names, each once whatever its case ("A100 SXM4 / A100 SXM"; "A100 PCIe")."""
    labels: dict[str, str] = {}
    for gpu_id in card:
        shown = known.get(gpu_id) or gpu_id
        labels.setdefault(shown.lower(), shown)
    return " / ".join(labels.values())


#: Words of a GPU's name that tell its maker or line, not the card ("NVIDIA GeForce RTX 4090").
_MAKER_WORDS = frozenset({"nvidia", "geforce", "tesla", "amd", "instinct"})


def same_cards(ids: Iterable[str], known: Mapping[str, str | None]) -> list[list[str]]:
    """`ids` grouped by card: two ids are one card when a name of each (its id or display name, less the
    maker's words and its memory size, "A100-SXM4-80GB" as "a 100 sxm 4") is the same and their memory
    sizes, where a name gives one, agree. So RunPod's "NVIDIA A100-SXM4-80GB" (shown "A100 SXM") and
    Vast's "A100 SXM4" are one card, and so are "A100 PCIe" and "A100 PCIE"; the V100 SXM2 of 16 GB and
    of 32 GB, the RTX 3090 and the 3090 Ti are not. A group's memory is its first sized member's, so an
    unsized name ("V100 SXM2" on another market) never joins two sizes into one card."""
    groups: list[tuple[set[str], list[int | None], list[str]]] = []
    for gpu_id in ids:
        keys, memory = _card_keys(gpu_id, known.get(gpu_id))
        for names, size, members in groups:
            if names & keys and (memory is None or size[0] is None or memory == size[0]):
                names |= keys
                size[0] = size[0] if size[0] is not None else memory
                members.append(gpu_id)
                break
        else:
            groups.append((set(keys), [memory], [gpu_id]))
    return [members for _, _, members in groups]


def _card_keys(gpu_id: str, name: str | None) -> tuple[set[str], int | None]:
    """The names a GPU type goes by without its maker's words or memory ("NVIDIA A100-SXM4-80GB" ->
    "a 100 sxm 4"; letters and digits apart, so "RTX 6000Ada" is "rtx 6000 ada"), and its memory in GB
    if one of its names gives it ("80GB")."""
    keys, memory = set(), None
    for label in (gpu_id, name or ""):
        words = re.findall(r"[a-z]+|\d+", label.lower())
        rest = []
        for k, word in enumerate(words):
            if word.isdigit() and k + 1 < len(words) and words[k + 1] == "gb":
                memory = memory if memory is not None else int(word)
            elif not (word == "gb" and k > 0 and words[k - 1].isdigit()) and word not in _MAKER_WORDS:
                rest.append(word)
        if rest:
            keys.add(" ".join(rest))
    return keys, memory


def check_gpu_ids(names: Iterable[str], known: Mapping[str, str | None]) -> None:
    """Names that must be GPU type ids as written, since they are compared with a pod's type id as
    they are (bidder.toml's `speed` keys): a ConfigError naming the first that is not a known id,
    with the ids it may mean (the ones it names in part, else the close ones)."""
    for name in names:
        if name in known:
            continue
        text = name.strip().lower()
        partial = sorted(i for i, shown in known.items() if text in i.lower() or text in (shown or "").lower())
        # A display name ("RTX A6000") is not an id: its id is what to write.
        ids = {label: [i for i, shown in known.items() if label in (i, shown)] for label in _close(name, known)}
        close = partial or list(dict.fromkeys(i for label in ids for i in sorted(ids[label])))
        raise ConfigError(f"unknown GPU type {name!r}; {_hint(close[:5], known)} (write the GPU type id in full)",
                          key="gpu")


def _close(query: str, known: Mapping[str, str | None]) -> list[str]:
    """Ids and display names close to what the user typed, best first (at most five)."""
    text = query.strip().lower()
    labels = sorted(set(known) | {n for n in known.values() if n})
    # Compare with whole names and with their words ("4900" is close to "... RTX 4090").
    # Ranked by likeness, best first ("RTX 4900" -> RTX 4090 before RTX 3090), not alphabetically.
    scored = sorted((-_likeness(text, label), label) for label in labels)
    close = [label for score, label in scored if -score >= 0.7][:5]
    return close or difflib.get_close_matches(query, labels, n=5, cutoff=0.5)


def _hint(close: list[str], known: Mapping[str, str | None], listed: str | None = None) -> str:
    return (f"close matches: {', '.join(close)}" if close else
            f"{len(known)} type{'s are' if len(known) != 1 else ' is'} known; {listed or '`bidder prices` lists them'}"
            if known else "no GPU types are known yet; " + EMPTY_HINT)


def _likeness(text: str, label: str) -> float:
    """How close what the user typed is to a name: the best ratio against the whole name or one of
    its words, a digit transposition ("4900" for "4090") scoring as a near match."""
    words = label.lower().split()
    best = max(difflib.SequenceMatcher(None, text, cand).ratio() for cand in (label.lower(), *words))
    typed = text.split()
    if set(words) <= set(typed):
        best = max(best, 0.9)  # every word of the name, with more besides ("RTX A40" for "A40")
    for t in typed:
        for w in words:
            if len(t) == len(w) > 1 and t != w and sorted(t) == sorted(w):
                diffs = [i for i in range(len(t)) if t[i] != w[i]]
                if len(diffs) == 2 and diffs[1] == diffs[0] + 1:
                    best = max(best, 0.95)  # two neighbouring characters swapped
    return best
