"""Every error bidder raises, in one tree.

    BidderError                 root: catch this to catch anything bidder raises on purpose
    ├── ConfigError             bad user input or config (carries the key and the file, if any)
    ├── StoreError              the SQLite history/ledger could not be used
    │   ├── SchemaTooNew        the file was written by a newer bidder
    │   ├── LockHeld            another process holds the exclusive tick lock
    │   └── StoreBusy           another writer held the database past the busy timeout (transient)
    ├── TraceFormatError        a trace CSV is malformed (carries line and column)
    ├── ApiError                talking to the RunPod API (or the emulator) failed
    │   ├── AuthError           HTTP 401: the API key is missing or wrong
    │   ├── RateLimited         HTTP 429 (carries retry_after in seconds, when given)
    │   ├── TransportError      connection refused/reset, timeout, HTTP 5xx, unreadable body
    │   │   └── MalformedAnswer an answer that is not what the operation returns (wrong types,
    │   │                       missing fields, impossible numbers, data null): maybe executed
    │   ├── IncompleteAnswer    true answers that do not make a whole snapshot (a search cut at
    │   │                       its limit that bidder could not page past)
    │   ├── NotInterruptible    Vast rented on-demand although a bid was sent (is_bid false)
    │   └── GraphQLError        the API answered with an `errors` array or HTTP 400
    │       ├── NoCapacity      "no instances available" / "does not have the resources"
    │       ├── SpotUnsupported the API no longer knows the spot mutations or fields
    │       └── PodNotFound     the pod id is unknown
    ├── InsufficientHistory     too little price history to estimate the market
    ├── TimeRunsBackwards       a command's time is before the newest data (carries now, newest)
    ├── KeyRefused              a market refused the key while a command refreshed its prices (an
    │                           AuthError made final: stored prices would hide a key to fix)
    └── Infeasible              no candidate meets the job's constraints (names the constraint)

No message in this tree ever contains the API key: the client builds messages from the operation
name, HTTP status and the server's error text only.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = [
    "AboveCostLimit",
    "ApiError",
    "AuthError",
    "BidderError",
    "ConfigError",
    "GraphQLError",
    "IncompleteAnswer",
    "Infeasible",
    "InsufficientHistory",
    "KeyRefused",
    "LockHeld",
    "MalformedAnswer",
    "NoCapacity",
    "NotInterruptible",
    "PodNotFound",
    "RateLimited",
    "SchemaTooNew",
    "SpotUnsupported",
    "StoreBusy",
    "StoreError",
    "TimeRunsBackwards",
    "TraceFormatError",
    "TransportError",
    "UnwantedInstance",
]


class BidderError(Exception):
    """Root of every error bidder raises on purpose."""


class ConfigError(BidderError):
    """Bad user input or configuration: names the key (and the file) that is wrong."""

    def __init__(self, message: str, *, key: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:  # keeps key and path across processes (a backtest's workers)
        return (functools.partial(type(self), key=self.key, path=self.path), self.args)


class StoreError(BidderError):
    """The SQLite database could not be opened, migrated or written."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of bidder."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class LockHeld(StoreError):
    """Another process holds the exclusive lock (e.g. another `bidder tick`). `holder` is what it
    wrote in the lock file ("pid 1234"), when readable."""

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class StoreBusy(StoreError):
    """SQLite stayed busy (locked by another connection's write) past the busy timeout: another bidder
    writing for long, such as a big `bidder import-trace`. Transient: the same write later succeeds."""


class TraceFormatError(BidderError):
    """A trace CSV is malformed; `line` is 1-based (the header is line 1)."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column


class ApiError(BidderError):
    """A call to the RunPod API failed. `operation` is the GraphQL operation (e.g. "podStop")."""

    def __init__(self, message: str, *, operation: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status


class AuthError(ApiError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class RateLimited(ApiError):
    """HTTP 429. `retry_after` is the server's Retry-After in seconds, or None."""

    def __init__(self, message: str, *, operation: str | None = None, status: int | None = 429,
                 retry_after: float | None = None) -> None:
        super().__init__(message, operation=operation, status=status)
        self.retry_after = retry_after


class TransportError(ApiError):
    """Connection error, timeout, HTTP 5xx or an unreadable body.

    `maybe_executed` is True when the request may have reached the server (a timeout or a
    dropped connection after sending): for a create, the pod may exist; look it up by name.
    `market` ("runpod", "vast"; None: not said) names the API, for a hint of which URL to check.
    """

    def __init__(self, message: str, *, operation: str | None = None, status: int | None = None,
                 maybe_executed: bool = False, market: str | None = None) -> None:
        super().__init__(message, operation=operation, status=status)
        self.maybe_executed = maybe_executed
        self.market = market


class UnwantedInstance(ApiError):
    """A Vast create made an instance bidder does not want (a losing bid's, created stopped; an
    on-demand rental despite the bid), which it tried to destroy at once: `destroyed` says whether
    that worked. When it did not, the instance still bills: the caller must see it ended."""

    def __init__(self, message: str, *, instance_id: int | None = None, destroyed: bool = False,
                 operation: str | None = None) -> None:
        super().__init__(message, operation=operation)
        self.instance_id = instance_id
        self.destroyed = destroyed


class NotInterruptible(UnwantedInstance):
    """A Vast create sent with a bid came back as an on-demand rental (`is_bid` false): the known
    way to overspend on Vast. `destroyed` says whether bidder destroyed it at once."""


class MalformedAnswer(TransportError):
    """The API answered HTTP 200, but not with what the operation returns: not JSON, `data` null
    without errors, a field of the wrong type or missing, an unknown enum value, an impossible number.
    Nothing of it is stored. For a mutation it counts as a lost answer (`maybe_executed`): the server
    may have done it, so a create is looked up by its name before anything else."""

    def __init__(self, message: str, *, operation: str | None = None, status: int | None = 200,
                 maybe_executed: bool = True) -> None:
        super().__init__(message, operation=operation, status=status, maybe_executed=maybe_executed)


class IncompleteAnswer(ApiError):
    """Every answer was true, but together they are not the whole market: a Vast search that still
    filled its limit after the requests bidder allows itself. Stored as a failed collection, never
    as a snapshot (the dearest offers, cut off, would read as gone)."""


class GraphQLError(ApiError):
    """The API answered with GraphQL errors. `messages` and `codes` are as the server sent them."""

    def __init__(self, message: str, *, operation: str | None = None, status: int | None = None,
                 messages: tuple[str, ...] = (), codes: tuple[str | None, ...] = ()) -> None:
        super().__init__(message, operation=operation, status=status)
        self.messages = messages
        self.codes = codes


class NoCapacity(GraphQLError):
    """No machine can take the pod right now (or, for spot, the bid is under the floor)."""


class AboveCostLimit(NoCapacity):
    """Offers take the bid, but none costs (with the storage it bills) within what the job's budget
    and max_spend_per_hour leave: the executor's refusal, found once the offer is known (Vast)."""


class SpotUnsupported(GraphQLError):
    """The API does not know the spot mutation or field: RunPod is retiring spot pods."""


class PodNotFound(GraphQLError):
    """The pod id is unknown to the API."""

    def __init__(self, message: str, *, pod_id: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.pod_id = pod_id


class InsufficientHistory(BidderError):
    """Too little price history to estimate a market (names the GPU type and the sample count).
    `not_offered`: the market was quoted without any price in every sample: more history will not help."""

    def __init__(self, message: str, *, gpu_type_id: str | None = None, samples: int = 0,
                 not_offered: bool = False) -> None:
        super().__init__(message)
        self.gpu_type_id = gpu_type_id
        self.samples = samples
        self.not_offered = not_offered


class Infeasible(BidderError):
    """No candidate meets the job's constraints. `constraint` names the one that ruled the last out;
    `until_changed`: no price or time to come can make the job feasible, only a change of the job (its
    deadline passed, or too near for its work even on-demand)."""

    def __init__(self, message: str, *, constraint: str, until_changed: bool = False) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.until_changed = until_changed

    def __reduce__(self) -> tuple[Any, ...]:  # keeps the fields across processes (a backtest's workers)
        return (functools.partial(type(self), constraint=self.constraint, until_changed=self.until_changed),
                self.args)


class TimeRunsBackwards(BidderError):
    """A command's time is earlier than the newest snapshot, observation or action in the database
    (see bidder.clock): the one clock would run backwards."""

    def __init__(self, message: str, *, now: object, newest: object) -> None:
        super().__init__(message)
        self.now = now
        self.newest = newest


class KeyRefused(BidderError):
    """A market refused the user's key (its AuthError) while `recommend --refresh` or `launch` refreshed
    its prices. An API that cannot be reached leaves them the stored prices; a wrong key is the user's
    to fix, so the command stops and says so, as `bidder collect` does: "MARKET: the error"."""

    def __init__(self, market: str, error: ApiError) -> None:
        super().__init__(f"{market}: {error}")
        self.market = market
        self.error = error
