"""Fault injection for the emulator: what a flaky API does to a client. Off by default.

A `FaultSpec` gives, per GraphQL request, the chance of each fault (they exclude each other):

    429       HTTP 429 with a Retry-After header; a share `html` of them with an HTML body
    500       HTTP 500 (the request is not executed)
    internal  HTTP 200 with RunPod's INTERNAL_SERVER_ERROR entry (not executed)
    timeout   the answer comes `delay` seconds late (the request IS executed: a client that gave
              up cannot know whether its create happened)
    drop      the connection is closed before the request is executed, without an answer

and, for create mutations (podRentInterruptable, podFindAndDeployOnDemand) only:

    lost_create  the create is executed, then the connection is closed without an answer
    late_create  the create is held `late_delay` seconds, THEN executed and answered: a client that
                 gave up at its timeout and looked the name up at once finds nothing; the pod
                 appears later (a create that reached RunPod after the client's timeout)

for podResume / podBidResume:

    late_resume  held `late_delay` seconds, then executed and answered (a slow resume: what a
                 command run meanwhile sees is the pod still stopped)

and for podStop / podTerminate:

    slow_stop    executed at once, answered `late_delay` seconds later (a process killed while it
                 waits never learns that its stop happened)

As text: "429=0.2,500=0.1,timeout=0.05,drop=0.05,lost_create=1,delay=0.7,retry_after=2,html=0.5";
"late_create=1,late_delay=3".
Draws come from one seeded stream, so a single-threaded client sees the same faults every run.

Malformed answers (an API that answers *wrongly*, not late) are given one by one, per operation:

    emu.malform("myself", lambda payload: {"data": {"myself": {**payload["data"]["myself"], "pods": None}}})
    emu.malform("podRentInterruptable", {"data": None})              # executed, the pod exists
    emu.malform("podRentInterruptable", b"<html>oops</html>", content_type="text/html")
    emu.malform("podRentInterruptable", {"errors": [...]}, status=429, execute=False,
                headers={"Retry-After": "1"})                         # refused unexecuted

`operation` is a top-level field (myself, pod, gpuTypes, podStop, ...), an operation name
(lowestPrices), a Vast request (vast:search, vast:create, vast:bid_price, vast:show, vast:set_state,
vast:destroy, vast:list) or "*"; `body` is the bytes/str sent, a JSON value, or a function of the real
answer's JSON payload returning the JSON (or bytes) to send instead. `execute=True` runs the request
first (a create makes its pod), `times` answers are spoiled (None: all). Rules are taken in the order
given; `emu.clear_malformed()` removes them.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from bidder.errors import ConfigError

__all__ = ["FAULT_KINDS", "OPERATION_FAULTS", "FaultInjector", "FaultSpec", "Malformed", "MalformedRules"]

#: Per-request fault kinds, in the order the draw tests them.
FAULT_KINDS: tuple[str, ...] = ("429", "500", "internal", "timeout", "drop")

_RATE_KEYS = {"429": "rate_429", "500": "rate_500", "internal": "rate_internal", "timeout": "rate_timeout",
              "drop": "rate_drop", "lost_create": "lost_create", "late_create": "late_create",
              "late_resume": "late_resume", "slow_stop": "slow_stop"}
_PARAM_KEYS = {"delay": "timeout_delay", "retry_after": "retry_after", "html": "html_share",
               "late_delay": "late_delay"}
#: The longest a fault may hold an answer back, in seconds (`delay`, `retry_after`, `late_delay`): an
#: hour, 120 times the client's 30 s timeout; past it (inf, 1e9) a server thread hangs for good.
MAX_FAULT_DELAY = 3600.0
#: Faults drawn per mutation of one kind (not per request), with the operations they apply to.
OPERATION_FAULTS: dict[str, frozenset[str]] = {
    "lost_create": frozenset({"podRentInterruptable", "podFindAndDeployOnDemand"}),
    "late_create": frozenset({"podRentInterruptable", "podFindAndDeployOnDemand"}),
    "late_resume": frozenset({"podResume", "podBidResume"}),
    "slow_stop": frozenset({"podStop", "podTerminate"}),
}


@dataclass(frozen=True)
class FaultSpec:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_internal: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    lost_create: float = 0.0
    late_create: float = 0.0
    late_resume: float = 0.0
    slow_stop: float = 0.0
    timeout_delay: float = 2.0   # seconds a "timeout" answer is held back
    retry_after: float = 1.0     # seconds, sent in Retry-After with every 429
    html_share: float = 0.5      # share of 429s whose body is an HTML page, not JSON
    late_delay: float = 2.0      # seconds a late_create / late_resume / slow_stop is held back

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value != value or value < 0:
                raise ConfigError(f"fault setting {f.name} must be a number >= 0, got {value!r}", key=f.name)
        for name in ("rate_429", "rate_500", "rate_internal", "rate_timeout", "rate_drop", "lost_create",
                     "late_create", "late_resume", "slow_stop", "html_share"):
            if getattr(self, name) > 1:
                raise ConfigError(f"fault setting {name} is a probability: give 0..1, got {getattr(self, name)}",
                                  key=name)
        for name in _PARAM_KEYS:
            value = getattr(self, _PARAM_KEYS[name])
            if name != "html" and value > MAX_FAULT_DELAY:
                raise ConfigError(f"fault setting {name} is seconds: give 0..{MAX_FAULT_DELAY:g} (an hour), "
                                  f"got {value:g}", key=_PARAM_KEYS[name])
        if self.request_rate > 1 + 1e-9:
            raise ConfigError(f"the per-request fault rates add up to {self.request_rate:g}; they must total <= 1",
                              key="faults")

    @property
    def request_rate(self) -> float:
        return self.rate_429 + self.rate_500 + self.rate_internal + self.rate_timeout + self.rate_drop

    @property
    def active(self) -> bool:
        return self.request_rate > 0 or any(getattr(self, k) > 0 for k in OPERATION_FAULTS)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse "429=0.2,500=0.1,timeout=0.05,drop=0.05,lost_create=1,delay=0.7" (see module doc)."""
        values: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            attr = _RATE_KEYS.get(name) or _PARAM_KEYS.get(name)
            if not sep or attr is None:
                known = ", ".join([*_RATE_KEYS, *_PARAM_KEYS])
                raise ConfigError(f"bad fault item {part!r}: use NAME=NUMBER with NAME one of {known}", key="faults")
            if attr in values:  # (the last one silently won)
                raise ConfigError(f"fault {name} is given twice in {text!r}: give it once", key="faults")
            try:
                values[attr] = float(raw)
            except ValueError:
                raise ConfigError(f"bad fault item {part!r}: {raw.strip()!r} is not a number", key="faults") from None
        return cls(**values)

    def __str__(self) -> str:
        names = {**{v: k for k, v in _RATE_KEYS.items()}, **{v: k for k, v in _PARAM_KEYS.items()}}
        return ",".join(f"{names[f.name]}={getattr(self, f.name):g}" for f in fields(self))


class FaultInjector:
    """Seeded draws of faults for one emulator (thread-safe)."""

    def __init__(self, spec: FaultSpec, seed: int = 0) -> None:
        self.spec = spec
        self._rng = random.Random(f"{seed}|faults")
        self._lock = threading.Lock()
        #: Faults injected so far, by kind ("429", "429_html", "lost_create", "slow_stop"...).
        self.counts: Counter[str] = Counter()

    def draw(self) -> str | None:
        """The fault for this request (one of FAULT_KINDS), or None."""
        if self.spec.request_rate <= 0:
            return None
        with self._lock:
            u = self._rng.random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(self.spec, _RATE_KEYS[kind])
            if u < edge:
                with self._lock:
                    self.counts[kind] += 1
                return kind
        return None

    def html(self) -> bool:
        with self._lock:
            html = self._rng.random() < self.spec.html_share
            if html:
                self.counts["429_html"] += 1
            return html

    def lose_create(self) -> bool:
        return self.operation_fault("lost_create")

    def operation_fault(self, kind: str) -> bool:
        """Draw one of OPERATION_FAULTS (a kind whose rate is 0 draws nothing: the stream of the
        other faults is the same with or without it)."""
        rate = float(getattr(self.spec, kind))
        if rate <= 0:
            return False
        with self._lock:
            hit = self._rng.random() < rate
            if hit:
                self.counts[kind] += 1
            return hit

    def late(self, operations: set[str]) -> tuple[str | None, str | None]:
        """(a delay-before-executing fault, a delay-after-executing fault) for a request carrying
        these mutations: "late_create" / "late_resume", and "slow_stop"."""
        before = after = None
        for kind in ("late_create", "late_resume"):
            if operations & OPERATION_FAULTS[kind] and self.operation_fault(kind):
                before = kind
        if operations & OPERATION_FAULTS["slow_stop"] and self.operation_fault("slow_stop"):
            after = "slow_stop"
        return before, after


@dataclass
class Malformed:
    """One spoiled answer rule (see the module docstring). `times` counts down as answers are spoiled."""

    operation: str
    body: bytes | str | Callable[[Any], Any] | Any
    status: int = 200
    execute: bool = True
    times: int | None = 1
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if not isinstance(self.operation, str) or not self.operation:
            raise ConfigError("a malformed answer needs an operation name (e.g. 'myself') or '*'", key="operation")
        if self.times is not None and (isinstance(self.times, bool) or not isinstance(self.times, int)
                                       or self.times < 1):
            raise ConfigError(f"times must be a whole number >= 1 or None, got {self.times!r}", key="times")

    def render(self, payload: Any) -> bytes:
        """The bytes to send, given the real answer's JSON payload (None when not executed)."""
        body = self.body(payload) if callable(self.body) else self.body
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode()
        return json.dumps(body, allow_nan=True).encode()


class MalformedRules:
    """The pending malformed-answer rules of one emulator (thread-safe)."""

    def __init__(self) -> None:
        self._rules: list[Malformed] = []
        self._lock = threading.Lock()
        self.spoiled = 0  # answers spoiled so far

    def add(self, rule: Malformed) -> Malformed:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def __bool__(self) -> bool:
        return bool(self._rules)

    def take(self, names: Iterable[str]) -> Malformed | None:
        """The first rule matching any of `names` (or "*"), counted as used; None when none does."""
        wanted = set(names)
        with self._lock:
            for rule in self._rules:
                if rule.operation == "*" or rule.operation in wanted:
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    self.spoiled += 1
                    return rule
        return None
