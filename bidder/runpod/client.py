"""`RunPodClient`: one typed method per RunPod GraphQL operation, over an injectable httpx.Client.

    with RunPodClient(api_key=key) as client:                       # or url=emulator.url
        quotes = client.lowest_prices((1, 2), ts=now)               # ONE request, every market
        pod = client.rent_interruptable(PodSpec(name="job-1", image_name="runpod/pytorch",
                                                gpu_type_id="NVIDIA RTX A6000"), bid_per_gpu=0.25)
        print(client.build_stop(pod.id).to_json())                  # what stop() would send

The key travels only in `Authorization: Bearer` (never in the URL, a log record, a repr or an
error). Errors are mapped in `errors_map` and raised here with `raise ... from exc`.

Retries (`RetryPolicy`) apply only to operations that are safe to repeat: the read queries,
`podStop` and `podTerminate`, on 429 (honouring Retry-After up to a cap), 5xx, timeouts and
connection errors, with exponential backoff and seeded jitter, bounded in attempts and in total
time. Creates (`podRentInterruptable`, `podFindAndDeployOnDemand`) and resumes are retried on a 429
only (the server refused them unexecuted); on anything else they are sent once: after a timeout,
a 5xx or a malformed answer the pod may exist, which `TransportError.maybe_executed` tells the
caller. Every answer is validated into its typed result; one that is not (see `types`) raises
`MalformedAnswer` and nothing of it reaches the caller.

When RunPod refuses the spot price fields (`minimumBidPrice`, `secureSpotPrice`,
`communitySpotPrice`: a validation error, SpotUnsupported), `lowest_prices` and `gpu_types` send
their query once more without them and the client asks without them from then on
(`spot_fields_supported` is False): on-demand prices keep coming, every spot floor reads None.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from bidder import __version__
from bidder.clock import server_time
from bidder.errors import (
    ApiError,
    AuthError,
    ConfigError,
    GraphQLError,
    PodNotFound,
    RateLimited,
    SpotUnsupported,
    TransportError,
)
from bidder.models import CLOUDS, MIN_PRICE, PriceQuote
from bidder.runpod import operations as ops
from bidder.runpod.errors_map import HTTPX_CAUGHT, decode_response, from_httpx, remember_secret, shape_error
from bidder.runpod.operations import GraphQLRequest
from bidder.runpod.types import (
    MAX_PRICE,
    Account,
    GpuType,
    Pod,
    PodSpec,
    finite_number,
    parse_account,
    parse_gpu_type,
    parse_pod,
    price_or_none,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "USER_AGENT",
    "RetryPolicy",
    "RunPodClient",
    "parse_quotes",
    "retryable",
]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.runpod.io/graphql"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"bidder/{__version__}"


@dataclass(frozen=True)
class RetryPolicy:
    """How a safe-to-repeat request is retried.

    At most `attempts` sends in all (1 = never retry). Before retry k (k = 1, 2, ...) the client
    waits `min(max_delay, base * 2**(k-1))`, jittered to between half and all of it by `rng`
    ("equal jitter": never a burst of near-zero waits), and at least the server's Retry-After.
    A Retry-After above `retry_after_cap` is not waited for: the RateLimited error goes to the
    caller at once (a collector loop can skip to its next slot). The waits plus the time spent in
    requests never exceed `max_total` seconds. `sleep` and `rng` are injectable so tests run fast
    and repeatably; `clock` measures request time (monotonic seconds).
    """

    attempts: int = 4
    base: float = 0.5
    max_delay: float = 8.0
    max_total: float = 60.0
    retry_after_cap: float = 30.0
    rng: random.Random = field(default_factory=lambda: random.Random(0), compare=False, repr=False)
    sleep: Callable[[float], object] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"retry attempts must be a whole number >= 1, got {self.attempts!r}", key="attempts")
        for name in ("base", "max_delay", "max_total", "retry_after_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"retry {name} must be a number of seconds >= 0, got {value!r}", key=name)

    def backoff(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (1-based), before Retry-After is applied."""
        full = min(self.max_delay, self.base * 2.0 ** (retry - 1))
        return full / 2 + self.rng.uniform(0, full / 2)

    def delay(self, retry: int, error: ApiError) -> float | None:
        """Seconds to wait before retry `retry` after `error`, or None when it must not be retried."""
        if retry >= self.attempts or not retryable(error):
            return None
        wait = self.backoff(retry)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            if error.retry_after > self.retry_after_cap:
                return None
            wait = max(wait, error.retry_after)
        return wait


def retryable(error: ApiError) -> bool:
    """Worth sending again (if the operation is safe to repeat): 429, 5xx/408, no answer, and
    RunPod's generic "Something went wrong" (code INTERNAL_SERVER_ERROR, HTTP 200)."""
    if isinstance(error, RateLimited):
        return True
    if type(error) is GraphQLError:
        return "INTERNAL_SERVER_ERROR" in error.codes
    return isinstance(error, TransportError) and (error.status is None or error.status >= 500
                                                  or error.status == 408)


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def checked_url(url: str, *, what: str, example: str, env: str, key: str, secret: str | None = None,
                where: str = "") -> str:
    """An API URL (`what`: "API URL", "Vast URL"; `where`: where it came from, as the CLI names it) as
    the client will use it, or one ConfigError. Keys in URLs end up in logs and shell history: only the
    Authorization header carries one. So a URL with a query, a fragment, a user or password, `;`
    parameters or the key itself is refused (any query, not `api_key` alone: `?API_KEY=`, `?token=`
    went out in notes that print the URL), and before anything else, so that no error quotes such a
    URL. So is a URL holding a space or a non-printable character (a line break from a pasted file):
    urlsplit drops some of them unsaid, and httpx refuses them mid-command."""
    bad = next((i for i, c in enumerate(url) if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        char = url[bad]
        name = ("a line break" if char in "\r\n" else "a tab" if char == "\t" else "a space" if char == " "
                else f"a space (U+{ord(char):04X})" if char.isspace()
                else f"a non-printable character (U+{ord(char):04X})")
        raise ConfigError(f"the {what}{where} holds {name} at character {bad + 1}: give the URL without it, "
                          f"such as {example}", key=key)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port that is not a number raises here, not in httpx)
    except ValueError as exc:  # "Invalid IPv6 URL", a bad port: the URL itself is not quoted
        raise ConfigError(f"the {what}{where} is not a valid URL ({exc}): give one such as {example}",
                          key=key) from None
    if (parts.query or parts.fragment or parts.username or parts.password or ";" in parts.path
            or (secret is not None and secret in url)):
        raise ConfigError(f"the {what}{where} must not carry the key, a query or a fragment (?api_key=, "
                          f"user:pass@, ;key=, #...): give the URL alone, such as {example}, and the key in {env}",
                          key=key)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the {what}{where} must be an http(s) URL such as {example}, got {url!r}", key=key)
    return url


def api_key_fault(api_key: str) -> str | None:
    """What in a stripped key no header value may hold ("a line break at character 3"), never quoting
    the key; None when it can travel. The emulator's --api-key takes only keys a client can send."""
    bad = next((c for c in api_key if not "!" <= c <= "~"), None)  # printable ASCII, no space
    if bad is None:
        return None
    what = ("a line break" if bad in "\r\n" else "a space or tab" if bad.isspace()
            else "a control character" if ord(bad) < 32 or ord(bad) == 127
            else "a non-ASCII character (a curly quote?)")
    return f"{what} at character {api_key.index(bad) + 1}"


def checked_api_key(api_key: str | None, *, env: str, key: str) -> str | None:
    """The key as it will travel in the Authorization header: stripped, and refused in one line when
    empty or when it holds what no header value may (a line break from a pasted file, a space, a
    curly quote): httpx would otherwise fail with the key itself in its message. The message names
    where the key comes from (`env`, or `key` in the config file) and never quotes it."""
    if api_key is None:
        return None
    if not isinstance(api_key, str) or not api_key.strip():
        raise ConfigError(f"the API key is empty: set {env} or leave it unset", key=key)
    api_key = api_key.strip()
    fault = api_key_fault(api_key)
    if fault is not None:
        raise ConfigError(f"the API key ({env}, or {key} in the config file) holds {fault}: copy the key "
                          "again, without quotes or line breaks", key=key)
    remember_secret(api_key)  # masked in every log line of this process (`bidder -vv`: httpcore's headers)
    return api_key


class EmulatorTime:
    """The server's clock, for a client whose server may be bidder's emulator (RunPod's and Vast's
    clients alike): `server_now` from the newest answer's X-Bidder-Sim-Now header, and
    `probe_server_now`. The client sets `url`, `retry`, `timeout`, `_http`, `_server_now = None` and
    `_probed = False`, and calls `_note_time` on every answer."""

    url: str
    retry: RetryPolicy
    timeout: float
    _http: httpx.Client
    _server_now: datetime | None
    _probed: bool
    #: Which API the client speaks (a connection error's hint names its URL setting).
    market = "runpod"

    @property
    def server_now(self) -> datetime | None:
        """The server's own time from the newest answer, when the server is bidder's emulator (its
        X-Bidder-Sim-Now header); None against RunPod or Vast, and before any answer."""
        return self._server_now

    def probe_server_now(self) -> datetime | None:
        """Ask the server for its time with `GET /sim/now`, only when it may be bidder's emulator:
        a server on this machine (the emulator listens on 127.0.0.1 only) that has not already
        answered without the header. Never sends a request to RunPod or Vast; sends no key. None when the
        server does not tell its time (then the caller uses the wall clock). A server that does not
        answer yet (an emulator just started with `&`) is asked again as the retry policy says, as
        the command's own first request would be; one that never answers raises TransportError: its
        time is unknown, and neither the wall clock (a late emulator's data was stamped 2026-12-06, and
        every later collect refused as running backwards) nor the time it told before (a `collect
        --every` cycle stored the restarted emulator's prices over the last snapshot, under its
        time) may stand in for it."""
        host = urlsplit(self.url).hostname or ""
        if host not in _LOOPBACK or (self._probed and self._server_now is None):
            return None
        url = str(httpx.URL(self.url).copy_with(path="/sim/now", query=None))
        for attempt in range(1, self.retry.attempts + 1):
            try:
                answer = self._http.get(url, headers={"User-Agent": USER_AGENT}, timeout=self.timeout)
            except HTTPX_CAUGHT as exc:
                if attempt < self.retry.attempts:
                    self.retry.sleep(self.retry.backoff(attempt))
                    continue
                raise from_httpx(exc, "reading the server's time", url, market=self.market, changes=False) from exc
            self._note_time(answer)
            break
        return self._server_now

    def _note_time(self, response: httpx.Response) -> None:
        seen = server_time(response.headers)
        if seen is not None:
            self._server_now = seen
        self._probed = True


class RunPodClient(EmulatorTime):
    """RunPod's GraphQL API (or bidder's emulator) as typed calls. See the module docstring.

    `api_key=None` sends no key: the catalogue and prices still work, `myself()` answers None and
    pod operations raise AuthError. `http` is an httpx.Client to use (not closed by this client);
    by default the client makes and owns one. `timeout` (seconds) applies to every request,
    whichever httpx client sends it.
    """

    def __init__(self, api_key: str | None = None, url: str = DEFAULT_URL, http: httpx.Client | None = None,
                 retry: RetryPolicy | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}", key="timeout")
        self._key = checked_api_key(api_key, env="RUNPOD_API_KEY", key="api_key")
        self.url = checked_url(url, what="API URL", example=DEFAULT_URL, env="RUNPOD_API_KEY", key="api_url",
                               secret=self._key)
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = httpx.Timeout(float(timeout), connect=min(float(timeout), 10.0))
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self.timeout)
        self._spot_fields: bool | None = None
        # The emulator's virtual time from the newest answer's X-Bidder-Sim-Now (RunPod never sends it).
        self._server_now: datetime | None = None
        self._probed = False

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the httpx client if this client made it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunPodClient(url={self.url!r}, key={'set' if self._key else 'none'})"

    @property
    def has_key(self) -> bool:
        return self._key is not None

    @property
    def spot_fields_supported(self) -> bool | None:
        """Whether RunPod still serves the spot price fields: None until a price or catalogue query
        has been answered, False once one was refused for asking for them (for this client's life)."""
        return self._spot_fields

    # -- transport -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _send_once(self, request: GraphQLRequest, pod_id: str | None) -> Mapping[str, Any]:
        try:
            response = self._http.post(self.url, json=request.payload(), headers=self._headers(),
                                       timeout=self.timeout)
        except HTTPX_CAUGHT as exc:
            raise from_httpx(exc, request.operation, self.url, self._key,
                             changes=request.query.lstrip().startswith("mutation")) from exc
        self._note_time(response)
        return decode_response(response, request.operation, pod_id=pod_id, secret=self._key)

    def execute(self, request: GraphQLRequest, *, pod_id: str | None = None) -> Mapping[str, Any]:
        """Send `request` (retried per the policy if `request.idempotent`); return its `data`.

        `pod_id` names the pod for a PodNotFound error. Raises ApiError subclasses.
        """
        return self._execute(request, pod_id=pod_id)

    def _execute(self, request: GraphQLRequest, *, pod_id: str | None = None,
                 gone_means_done: bool = False) -> Mapping[str, Any]:
        # gone_means_done: a PodNotFound on a retry that follows an attempt which may have
        # executed means that attempt did the job (terminate). Answers None as `data`.
        policy = self.retry
        waited = spent = 0.0
        sends = 0
        maybe_executed = False
        while True:
            sends += 1
            started = policy.clock()
            try:
                data = self._send_once(request, pod_id)
            except PodNotFound:
                if gone_means_done and maybe_executed:
                    log.info("%s: pod %s is gone after an unanswered attempt: done", request.operation, pod_id)
                    return {}
                raise
            except ApiError as error:
                spent += policy.clock() - started
                maybe_executed = maybe_executed or getattr(error, "maybe_executed", False)
                # A 429 was refused unexecuted: even a create may be sent again.
                again = request.idempotent or isinstance(error, RateLimited)
                wait = policy.delay(sends, error) if again else None
                if wait is None or waited + spent + wait > policy.max_total:
                    log.debug("%s failed after %d send(s): %s", request.operation, sends, type(error).__name__)
                    raise
                log.info("%s: %s; retry %d in %.2f s", request.operation, type(error).__name__, sends, wait)
                policy.sleep(wait)
                waited += wait
                continue
            log.debug("%s ok after %d send(s) in %.3f s", request.operation, sends, policy.clock() - started)
            return data

    def _parse(self, operation: str, parse: Callable[[Any], Any], value: Any) -> Any:
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            raise shape_error(operation, exc, self._key) from exc

    # -- catalogue and prices ------------------------------------------------------------------
    def _spot_fields_query(self, build: Callable[[bool], GraphQLRequest]) -> tuple[GraphQLRequest, Mapping[str, Any]]:
        """Send `build(spot)`; if RunPod refuses its spot price fields, send `build(False)` once and
        remember it, so later queries leave them out from the start. Returns what was sent and its data."""
        spot = self._spot_fields is not False
        request = build(spot)
        try:
            data = self.execute(request)
        except SpotUnsupported as exc:
            if not spot:
                raise
            log.info("%s; asking again without the spot price fields (on-demand prices only)", exc)
            request = build(False)
            data = self.execute(request)
            self._spot_fields = False
            return request, data
        if spot:
            self._spot_fields = True
        return request, data

    def build_gpu_types(self) -> GraphQLRequest:
        return ops.build_gpu_types(spot=self._spot_fields is not False)

    def gpu_types(self) -> list[GpuType]:
        """The GPU catalogue (names, VRAM, clouds, list prices). Works without a key. Spot list
        prices read None once RunPod no longer serves them (see `spot_fields_supported`)."""
        _, data = self._spot_fields_query(lambda spot: ops.build_gpu_types(spot=spot))
        return self._parse("gpuTypes", lambda d: [parse_gpu_type(g) for g in _items(d, "gpuTypes")], data)

    def build_lowest_prices(self, gpu_counts: Sequence[int] = (1,),
                            clouds: Sequence[str] = CLOUDS) -> GraphQLRequest:
        return ops.build_lowest_prices(gpu_counts, clouds, spot=self._spot_fields is not False)

    def lowest_prices(self, gpu_counts: Sequence[int] = (1,), clouds: Sequence[str] = CLOUDS, *,
                      ts: datetime) -> list[PriceQuote]:
        """Every GPU type x cloud x GPU count in ONE request, as PriceQuotes stamped `ts`.

        One quote per combination, also for a cloud the type is not offered in (secureCloud or
        communityCloud false): that row has no prices, so a snapshot always has the same shape.
        A 0 or null minimumBidPrice (no spot capacity) reads None, as does a 0 or null price; so
        does every floor once RunPod no longer serves the spot fields (one extra request, the
        first time: see `spot_fields_supported`).
        """
        if not isinstance(ts, datetime) or ts.tzinfo is None:
            raise ConfigError(f"ts must be a timezone-aware datetime, got {ts!r}", key="ts")
        counts, wanted = ops.price_markets(gpu_counts, clouds)
        request, data = self._spot_fields_query(lambda spot: ops.build_lowest_prices(counts, wanted, spot=spot))
        spot = self._spot_fields is not False
        return self._parse(request.operation, lambda d: parse_quotes(d, ts, counts, wanted, spot=spot), data)

    # -- account and pods ----------------------------------------------------------------------
    def build_myself(self) -> GraphQLRequest:
        return ops.build_myself()

    def myself(self) -> Account | None:
        """The account (balance, spend, pods), or None when no key was given (RunPod's answer)."""
        data = self.execute(self.build_myself())
        value = data.get("myself")
        return None if value is None else self._parse("myself", parse_account, value)

    def pods(self) -> list[Pod]:
        """Every pod of the account (terminated pods are gone). Needs a key."""
        account = self.myself()
        if account is None:
            raise AuthError("myself: the API did not recognise an account: give an API key (RUNPOD_API_KEY) "
                            "to list pods", operation="myself")
        return list(account.pods)

    def build_pod(self, pod_id: str) -> GraphQLRequest:
        return ops.build_pod(pod_id)

    def pod(self, pod_id: str) -> Pod:
        """One pod; raises PodNotFound for an unknown (or terminated) id."""
        request = self.build_pod(pod_id)
        data = self.execute(request, pod_id=pod_id)
        if "pod" not in data:
            # RunPod answers `"pod": null` for an unknown id; an answer without the field proves nothing
            # (taken for "not found", it marked a running pod gone and dropped a user's stop).
            raise shape_error("pod", ValueError("the answer has no pod field"))
        value = data["pod"]
        if value is None:
            raise PodNotFound(f"pod: pod not found: {pod_id}", pod_id=pod_id, operation="pod", status=200,
                              messages=("pod not found",), codes=(None,))
        return self._parse("pod", parse_pod, value)

    # -- mutations: each has a build_* twin that returns exactly what it sends -------------------
    def _pod_of(self, request: GraphQLRequest, pod_id: str | None = None) -> Pod:
        data = self.execute(request, pod_id=pod_id)
        value = data.get(request.operation)
        if value is None:
            raise shape_error(request.operation, ValueError("no pod in the answer"))
        return self._parse(request.operation, parse_pod, value)

    def build_rent_interruptable(self, spec: PodSpec, bid_per_gpu: float) -> GraphQLRequest:
        return ops.build_rent_interruptable(spec, bid_per_gpu)

    def rent_interruptable(self, spec: PodSpec, bid_per_gpu: float) -> Pod:
        """Create a spot pod bidding `bid_per_gpu` USD per GPU-hour. Sent once, never retried."""
        return self._pod_of(self.build_rent_interruptable(spec, bid_per_gpu))

    def build_deploy_on_demand(self, spec: PodSpec) -> GraphQLRequest:
        return ops.build_deploy_on_demand(spec)

    def deploy_on_demand(self, spec: PodSpec) -> Pod:
        """Create an on-demand pod. Sent once, never retried."""
        return self._pod_of(self.build_deploy_on_demand(spec))

    def build_bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> GraphQLRequest:
        return ops.build_bid_resume(pod_id, bid_per_gpu, gpu_count)

    def bid_resume(self, pod_id: str, bid_per_gpu: float, gpu_count: int) -> Pod:
        """Restart a stopped spot pod with a new bid per GPU. Sent once, never retried."""
        return self._pod_of(self.build_bid_resume(pod_id, bid_per_gpu, gpu_count), pod_id)

    def build_resume(self, pod_id: str, gpu_count: int | None = None) -> GraphQLRequest:
        return ops.build_resume(pod_id, gpu_count)

    def resume(self, pod_id: str, gpu_count: int | None = None) -> Pod:
        """Restart a stopped on-demand pod. Sent once, never retried."""
        return self._pod_of(self.build_resume(pod_id, gpu_count), pod_id)

    def build_stop(self, pod_id: str) -> GraphQLRequest:
        return ops.build_stop(pod_id)

    def stop(self, pod_id: str) -> Pod:
        """Stop a pod (it comes back EXITED; the volume stays, and is billed). Retried."""
        return self._pod_of(self.build_stop(pod_id), pod_id)

    def build_terminate(self, pod_id: str) -> GraphQLRequest:
        return ops.build_terminate(pod_id)

    def terminate(self, pod_id: str) -> None:
        """Delete a pod for good. Retried; when a retry finds the pod gone after an attempt that
        may have executed, the pod was terminated by that attempt and this returns normally."""
        self._execute(self.build_terminate(pod_id), pod_id=pod_id, gone_means_done=True)


def _items(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    if not isinstance(value, list):
        raise ValueError(f"{name} should be a list, got {type(value).__name__}")
    return [v for v in value if v is not None]


def parse_quotes(data: Mapping[str, Any], ts: datetime, counts: tuple[int, ...],
                 clouds: tuple[str, ...], *, spot: bool = True) -> list[PriceQuote]:
    """The PriceQuotes of a `build_lowest_prices(counts, clouds, spot=spot)` answer's data (see
    lowest_prices). GraphQL answers every field asked for, null when empty: an alias or a field
    left out is a broken answer (ValueError), never a price that is not there."""
    fields = ops.lowest_price_fields(spot)
    quotes = []
    for raw in _items(data, "gpuTypes"):
        gpu = parse_gpu_type(raw)
        for cloud in clouds:
            offered = gpu.offered_in(cloud)
            for count in counts:
                alias = ops.price_alias(cloud, count)
                if alias not in raw:
                    raise ValueError(f"{alias} of {gpu.id} is missing from the answer")
                lowest = raw[alias] if offered else None
                if lowest is not None and not isinstance(lowest, Mapping):
                    raise ValueError(f"{alias} of {gpu.id} should be an object")
                missing = [f for f in fields if f not in lowest] if lowest is not None else []
                if missing:
                    raise ValueError(f"{alias} of {gpu.id} is missing field(s) {', '.join(missing)}")
                quotes.append(_quote(gpu, cloud, count, lowest or {}, ts))
    return quotes


def _quote(gpu: GpuType, cloud: str, count: int, lowest: Mapping[str, Any], ts: datetime) -> PriceQuote:
    def number(name: str) -> float | None:
        value = lowest.get(name)
        if value is None:
            return None
        if not finite_number(value):
            raise ValueError(f"{name} of {gpu.id} should be a number, got a {type(value).__name__} value")
        if value > MAX_PRICE or 0 < value < MIN_PRICE:  # (0 or less is RunPod's "none": price_or_none)
            raise ValueError(f"{name} of {gpu.id} should be a price from {MIN_PRICE:g} to {MAX_PRICE:g} USD per "
                             f"GPU-hour, got {value:g}")
        return float(value)

    counts = lowest.get("availableGpuCounts") or []
    if not isinstance(counts, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
        raise ValueError(f"availableGpuCounts of {gpu.id} should be a list of whole numbers")
    stock = lowest.get("stockStatus")
    max_unreserved = lowest.get("maxUnreservedGpuCount")
    return PriceQuote(
        ts=ts, gpu_type_id=gpu.id, cloud=cloud, gpu_count=count,
        minimum_bid_price=price_or_none(number("minimumBidPrice")),
        uninterruptable_price=price_or_none(number("uninterruptablePrice")),
        stock_status=str(stock) if stock is not None else None,
        available_gpu_counts=tuple(counts),
        max_unreserved_gpu_count=int(max_unreserved) if isinstance(max_unreserved, int) else None,
        memory_in_gb=gpu.memory_in_gb, display_name=gpu.display_name,
        list_spot_price=gpu.list_spot_price(cloud), list_on_demand_price=gpu.list_on_demand_price(cloud),
    )
