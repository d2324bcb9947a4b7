"""`VastClient`: one typed method per Vast REST call, over an injectable httpx.Client.

    with VastClient(api_key=key) as vast:                            # or url=emulator.vast_url
        offers = vast.search_offers(["RTX 4090"], num_gpus=[1, 2])   # ONE request, spot + on-demand
        spec = InstanceSpec(label="bidder-job-1-a1", image="pytorch/pytorch")
        inst = vast.create_interruptible(offers[0].id, spec, bid_per_gpu=0.25, num_gpus=offers[0].num_gpus)
        print(vast.build_destroy(inst.id).to_text(vast.url))          # what destroy() would send

The key travels only in `Authorization: Bearer` (never in a URL, a log record, a repr or an
error). Prices: bids are given per GPU and converted once, by `bidder.vast.offers.per_instance`,
into the per-instance `price` Vast takes; results keep Vast's per-instance figures.

Retries (`RetryPolicy`, shared with the RunPod client) apply to the calls that are safe to repeat:
search, reads, change-bid (it sets an absolute price), stop, start and destroy; on 429, 5xx,
timeouts and connection errors. Vast sends no Retry-After with its 429s, so the client computes
an exponential back-off (`rate_limit_base * 2**k`, at most the policy's max_delay) and puts the
next one in `RateLimited.retry_after` when it gives up. Creates are sent once: after a timeout the
instance may exist (`TransportError.maybe_executed`): look for it with `find_by_label`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from bidder import __version__
from bidder.errors import (
    ApiError,
    ConfigError,
    MalformedAnswer,
    NoCapacity,
    NotInterruptible,
    PodNotFound,
    RateLimited,
    TransportError,
    UnwantedInstance,
)
from bidder.runpod.client import EmulatorTime, RetryPolicy, checked_api_key, checked_url
from bidder.runpod.errors_map import HTTPX_CAUGHT, from_httpx, json_or_none
from bidder.vast import operations as ops
from bidder.vast.errors_map import classify, decode_response, error_fields, unexpected
from bidder.vast.offers import SEARCH_DISK_GB, Offer, OfferList, per_instance
from bidder.vast.operations import VastRequest
from bidder.vast.types import ImplausibleOffer, Instance, InstanceSpec, parse_instance, parse_offer

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_URL", "USER_AGENT", "VastClient", "checked_vast_base"]

log = logging.getLogger(__name__)

DEFAULT_URL = "https://console.vast.ai"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"bidder/{__version__}"
_MAX_PAGES = 400  # 10,000 instances: a guard against a server that never stops paging


def checked_vast_base(url: str, where: str = "") -> str:
    """`url` if it is a server's address, not an API path under it: Vast's docs write their endpoints
    as https://console.vast.ai/api/v0/..., and a VAST_URL copied from them asked /api/v0/api/v0/bundles/
    (the emulator's 404 read "no route", not "wrong URL"); RunPod's /graphql copied over did the same."""
    path = urlsplit(url).path.rstrip("/").lower()
    tail = next((t for t in ("/api/v0", "/api/v1", "/api", "/graphql") if path.endswith(t)), None)
    if tail is not None:
        whose = "RunPod's API path" if tail == "/graphql" else "an API path bidder adds itself"
        raise ConfigError(f"the Vast URL{where} ends in {tail}, {whose}: give the server's address alone, such as "
                          f"{DEFAULT_URL} (or http://127.0.0.1:PORT for `bidder sim serve`)", key="vast_url")
    return url


class VastClient(EmulatorTime):
    """Vast's REST API (or bidder's emulator) as typed calls. See the module docstring.

    `api_key=None` sends no key: the offer search still works [3rd]; instance calls raise
    AuthError. `http` is an httpx.Client to use (not closed by this client). `rate_limit_base`
    is the first wait after a 429, in seconds [docs: about one request per second per endpoint].
    """

    market = "vast"

    def __init__(self, api_key: str | None = None, url: str = DEFAULT_URL, http: httpx.Client | None = None,
                 retry: RetryPolicy | None = None, timeout: float = DEFAULT_TIMEOUT,
                 rate_limit_base: float = 1.0) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}", key="timeout")
        if isinstance(rate_limit_base, bool) or not isinstance(rate_limit_base, (int, float)) or rate_limit_base < 0:
            raise ConfigError(f"rate_limit_base must be seconds >= 0, got {rate_limit_base!r}", key="rate_limit_base")
        self._key = checked_api_key(api_key, env="VAST_API_KEY", key="vast_api_key")
        # (Vast's legacy CLI put ?api_key= in URLs: refused, as any key in a URL)
        self.url = checked_vast_base(checked_url(url, what="Vast URL", example=DEFAULT_URL, env="VAST_API_KEY",
                                                 key="vast_url", secret=self._key)).rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = httpx.Timeout(float(timeout), connect=min(float(timeout), 10.0))
        self.rate_limit_base = float(rate_limit_base)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self.timeout)
        # The emulator's virtual time from the newest answer's X-Bidder-Sim-Now (Vast never sends it).
        self._server_now: datetime | None = None
        self._probed = False

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VastClient(url={self.url!r}, key={'set' if self._key else 'none'})"

    @property
    def has_key(self) -> bool:
        return self._key is not None

    # -- transport -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _send_raw(self, request: VastRequest) -> httpx.Response:
        url = request.url(self.url)
        try:
            response = self._http.request(request.method, url, json=request.body, headers=self._headers(),
                                          timeout=self.timeout)
        except HTTPX_CAUGHT as exc:
            raise from_httpx(exc, request.operation, url, self._key, market="vast",
                             changes=request.method != "GET") from exc
        self._note_time(response)
        return response

    def rate_limit_wait(self, retry: int) -> float:
        """The computed wait before retry `retry` (1-based) after a 429: Vast gives no Retry-After."""
        return min(self.retry.max_delay, self.rate_limit_base * 2.0 ** (retry - 1))

    def execute(self, request: VastRequest, *, instance_id: int | None = None,
                gone_means_done: bool = False) -> Mapping[str, Any]:
        """Send `request` (retried per the policy if idempotent); return the answer's JSON object.

        `gone_means_done`: a PodNotFound after an attempt that may have executed means that
        attempt did the job (destroy); answers {}.
        """
        policy = self.retry
        waited = spent = 0.0
        sends = 0
        maybe_executed = False
        while True:
            sends += 1
            started = policy.clock()
            try:
                response = self._send_raw(request)
                return decode_response(response, request.operation, instance_id=instance_id, secret=self._key)
            except PodNotFound:
                if gone_means_done and maybe_executed:
                    log.info("%s: instance %s is gone after an unanswered attempt: done", request.operation,
                             instance_id)
                    return {}
                raise
            except ApiError as error:
                spent += policy.clock() - started
                maybe_executed = maybe_executed or getattr(error, "maybe_executed", False)
                wait = policy.delay(sends, error) if request.idempotent else None
                if isinstance(error, RateLimited):
                    computed = self.rate_limit_wait(sends)
                    error.retry_after = computed
                    wait = None if wait is None else max(wait, computed)
                if wait is None or waited + spent + wait > policy.max_total:
                    log.debug("%s failed after %d send(s): %s", request.operation, sends, type(error).__name__)
                    raise
                log.info("%s: %s; retry %d in %.2f s", request.operation, type(error).__name__, sends, wait)
                policy.sleep(wait)
                waited += wait

    def _parse(self, operation: str, parse: Callable[[Any], Any], value: Any) -> Any:
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError) as exc:
            raise unexpected(operation, exc, self._key) from exc

    # -- the market ----------------------------------------------------------------------------
    def build_search(self, gpu_names: Sequence[str] | None = None, num_gpus: Sequence[int] | int | None = None,
                     **filters: Any) -> VastRequest:
        return ops.build_search(gpu_names, num_gpus, **filters)

    def search_offers(self, gpu_names: Sequence[str] | None = None, num_gpus: Sequence[int] | int | None = None,
                      *, verified: bool | None = None, min_reliability: float | None = None,
                      disk_gb: float = SEARCH_DISK_GB, limit: int = ops.DEFAULT_SEARCH_LIMIT,
                      max_pages: int = ops.MAX_SEARCH_PAGES) -> OfferList:
        """Every rentable offer of these GPU names (Vast's spelling, e.g. "RTX 4090") and counts, in
        ONE request while the answer stays under `limit`: each Offer carries its spot floor (`min_bid`)
        and on-demand price (`dph_total`, storage for `disk_gb` included), per instance. Works without a
        key. Retried.

        An answer that fills `limit` (cheapest `dph_total` first) is followed by the next page: the same
        search with `dph_total gte` its last price, offers already seen dropped (ties repeat). After
        `max_pages` full answers, or a full answer that cannot be paged past (not in price order, a
        last offer without a price, nothing new), the list is marked `complete=False`."""
        seen: dict[int, Offer] = {}
        floor: float | None = None
        for page in range(1, max_pages + 1):
            extra = {"dph_total": {"gte": floor}} if floor is not None else None
            request = ops.build_search(gpu_names, num_gpus, verified=verified, min_reliability=min_reliability,
                                       disk_gb=disk_gb, limit=limit, extra=extra)
            offers, listed = self._parse(request.operation, _offers, self.execute(request))
            new = [o for o in offers if o.id not in seen]
            seen.update((o.id, o) for o in new)
            if listed < limit:
                return OfferList(seen.values(), requests=page)
            prices = [o.dph_total for o in offers]
            last = prices[-1]
            in_order = all(p is not None for p in prices) and prices == sorted(prices)  # type: ignore[type-var]
            if not new or last is None or not in_order:
                return OfferList(seen.values(), complete=False, requests=page)
            floor = last
        return OfferList(seen.values(), complete=False, requests=max_pages)

    # -- creates (sent once) ---------------------------------------------------------------------
    def build_create_interruptible(self, offer_id: int, spec: InstanceSpec, bid_per_gpu: float, *,
                                   num_gpus: int) -> VastRequest:
        return ops.build_create(offer_id, spec, per_instance(_bid(bid_per_gpu), num_gpus))

    def create_interruptible(self, offer_id: int, spec: InstanceSpec, bid_per_gpu: float, *,
                             num_gpus: int) -> Instance:
        """Rent offer `offer_id` (with `num_gpus` GPUs) as an interruptible instance bidding
        `bid_per_gpu` USD per GPU-hour; always sends `price` = bid x GPUs. Sent once.

        Then reads the instance back: if Vast made it on-demand (`is_bid` false) it is destroyed
        and NotInterruptible raised. A bid too low to win is answered with an error that still
        names the new instance (created stopped, billing storage): it is destroyed and
        NoCapacity raised. A TransportError with maybe_executed: look it up with find_by_label.
        """
        request = self.build_create_interruptible(offer_id, spec, bid_per_gpu, num_gpus=num_gpus)
        instance_id = self._create(request)
        inst = self._read_back(instance_id, request.operation)
        if inst.is_bid is not True:
            destroyed = self._destroy_quietly(instance_id)
            fate = "destroyed it" if destroyed else f"COULD NOT destroy it: destroy instance {instance_id} now"
            raise NotInterruptible(f"create_interruptible: Vast rented offer {offer_id} on-demand (is_bid "
                                   f"{inst.is_bid}) although a bid was sent; bidder {fate}",
                                   instance_id=instance_id, destroyed=destroyed, operation=request.operation)
        return inst

    def build_create_on_demand(self, offer_id: int, spec: InstanceSpec) -> VastRequest:
        return ops.build_create(offer_id, spec, None)

    def create_on_demand(self, offer_id: int, spec: InstanceSpec) -> Instance:
        """Rent offer `offer_id` on-demand (no `price`). Sent once; the instance is read back."""
        request = self.build_create_on_demand(offer_id, spec)
        return self._read_back(self._create(request), request.operation)

    def _read_back(self, instance_id: int, operation: str) -> Instance:
        """The instance a create just made, read back. It exists whatever this read answers: a failed
        read (rate limited, "not found" while Vast's view lags, a spoiled answer) is a create whose
        outcome is unknown, so the caller looks it up by its label and rents nothing else meanwhile
        (taken as "nothing created", the job rented a second instance beside it)."""
        try:
            return self.instance(instance_id)
        except ApiError as exc:
            raise TransportError(f"{operation}: instance {instance_id} was created, but reading it back failed "
                                 f"({exc})", operation=operation, maybe_executed=True) from exc

    def _create(self, request: VastRequest) -> int:
        response = self._send_raw(request)
        body = json_or_none(response)
        contract = body.get("new_contract") if isinstance(body, Mapping) else None
        refused = response.status_code >= 400 or (isinstance(body, Mapping) and body.get("success") is False)
        if contract is not None and refused and response.status_code not in (401, 403, 429):
            # A losing bid: Vast made the instance (stopped) and said no. It bills storage: destroy.
            code, text = error_fields(body)
            instance_id = _contract_id(contract)
            destroyed = instance_id is not None and self._destroy_quietly(instance_id)
            # The server's `new_contract` is never echoed into a message (it could carry anything).
            fate = (f"instance {instance_id} it created stopped was destroyed" if destroyed
                    else f"instance {instance_id if instance_id is not None else '(unreadable id)'} it created "
                         "stopped could NOT be destroyed: destroy it now")
            error = classify(request.operation, response.status_code, code, text, secret=self._key)
            if not destroyed:
                raise UnwantedInstance(f"{error}; the bid did not win: {fate}", instance_id=instance_id,
                                       operation=request.operation) from None
            raise NoCapacity(f"{error}; the bid did not win: {fate}", operation=request.operation,
                             status=response.status_code, messages=getattr(error, "messages", ()),
                             codes=getattr(error, "codes", ())) from None
        try:
            body = decode_response(response, request.operation, secret=self._key)
        except RateLimited as error:
            error.retry_after = self.rate_limit_wait(1)  # not retried (a create), but say when to try
            raise
        instance_id = _contract_id(body.get("new_contract"))
        if instance_id is None:
            raise unexpected(request.operation, ValueError("field new_contract is missing or not a whole number"),
                             self._key)
        log.info("%s: instance %s created (label %s)", request.operation, instance_id, request.body.get("label")
                 if request.body else None)
        return instance_id

    def _destroy_quietly(self, instance_id: int) -> bool:
        try:
            self.destroy(instance_id)
        except ApiError as exc:
            log.info("could not destroy instance %s: %s", instance_id, exc)  # (the caller's error says so)
            return False
        return True

    # -- bids, reads, stop/start/destroy (retried) ---------------------------------------------
    def build_change_bid(self, instance_id: int, bid_per_gpu: float, num_gpus: int) -> VastRequest:
        price = per_instance(_bid(bid_per_gpu), num_gpus)
        if price > ops.MAX_BID_PER_GPU * num_gpus:
            raise ConfigError(f"a bid of {bid_per_gpu:g} per GPU is above Vast's change-bid cap of "
                              f"{ops.MAX_BID_PER_GPU:g} per GPU", key="bid")
        return ops.build_change_bid(instance_id, price)

    def change_bid(self, instance_id: int, bid_per_gpu: float, num_gpus: int) -> None:
        """Set the bid of an interruptible instance to `bid_per_gpu` x `num_gpus` per hour. A paused
        instance whose new bid is the highest resumes by itself. Retried (an absolute price)."""
        request = self.build_change_bid(instance_id, bid_per_gpu, num_gpus)
        price = request.body["price"] if request.body else None
        self._confirmed(request, self.execute(request, instance_id=instance_id), instance_id,
                        lambda inst: inst.bid_price is not None and price is not None
                        and abs(inst.bid_price - price) <= 1e-6)

    def _confirmed(self, request: VastRequest, body: Mapping[str, Any], instance_id: int,
                   done: Callable[[Instance], bool] | None) -> None:
        """A mutation is done when Vast says `"success": true`; an answer without it (`{}`, anything
        else) proves nothing, so the instance is read back and must show it done (`done` None: gone,
        for a destroy). Otherwise a MalformedAnswer: the mutation may or may not have happened."""
        if body.get("success") is True:
            return
        try:
            inst = self.instance(instance_id)
        except PodNotFound:
            if done is None:
                return
            raise
        if done is not None and done(inst):
            return
        raise MalformedAnswer(f"{request.operation}: Vast answered instance {instance_id}'s request without "
                              "\"success\": true, and the instance does not show it done", operation=request.operation)

    def build_instance(self, instance_id: int) -> VastRequest:
        return ops.build_instance(instance_id)

    def instance(self, instance_id: int) -> Instance:
        """One instance. PodNotFound when Vast says it does not know it (404 `no_such_instance`); an
        answer without it (`"instances": null`) is a MalformedAnswer: no proof that it ended."""
        request = ops.build_instance(instance_id)
        body = self.execute(request, instance_id=instance_id)
        raw = body.get("instances")
        if raw is None:
            raise MalformedAnswer(f"instance: Vast answered no instance for {instance_id} (\"instances\": null), "
                                  "which is no proof that it ended", operation="instance")
        return self._parse(request.operation, parse_instance, raw)

    def iter_instances(self) -> Iterator[Instance]:
        """Every instance of the account, page by page (GET /api/v1/instances/, at most 25 a page)."""
        token: str | None = None
        for _ in range(_MAX_PAGES):
            request = ops.build_instances(token)
            body = self.execute(request)
            page, token = self._parse(request.operation, _page, body)
            yield from page
            if not token:
                return
        raise ApiError(f"instances: still paging after {_MAX_PAGES} pages; stopped", operation="instances")

    def instances(self) -> list[Instance]:
        return list(self.iter_instances())

    def find_by_label(self, label: str) -> list[Instance]:
        """The instances carrying `label` (bidder's deterministic per-job label): how a create whose
        answer was lost is found. An empty list is proof of absence only if the listing succeeded."""
        return [inst for inst in self.iter_instances() if inst.label == label]

    def build_stop(self, instance_id: int) -> VastRequest:
        return ops.build_set_state(instance_id, "stopped")

    def stop(self, instance_id: int) -> None:
        """Stop an instance (its disk stays, and bills storage). Retried."""
        request = self.build_stop(instance_id)
        self._confirmed(request, self.execute(request, instance_id=instance_id), instance_id,
                        lambda inst: inst.intended_status == "stopped")

    def build_start(self, instance_id: int) -> VastRequest:
        return ops.build_set_state(instance_id, "running")

    def start(self, instance_id: int) -> None:
        """Start a stopped instance (a bid instance runs only while its bid is the highest). Retried."""
        request = self.build_start(instance_id)
        self._confirmed(request, self.execute(request, instance_id=instance_id), instance_id,
                        lambda inst: inst.intended_status == "running")

    def build_destroy(self, instance_id: int) -> VastRequest:
        return ops.build_destroy(instance_id)

    def destroy(self, instance_id: int) -> None:
        """Destroy an instance for good. Retried; `no_such_instance` means it is already gone: done."""
        request = self.build_destroy(instance_id)
        try:
            body = self.execute(request, instance_id=instance_id, gone_means_done=True)
        except PodNotFound:
            log.info("destroy: instance %s is already gone", instance_id)
            return
        self._confirmed(request, body, instance_id, None)  # ({} after an unanswered attempt found it gone)


def _bid(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"a bid must be a positive number of USD per GPU-hour, got {value!r}", key="bid")
    return float(value)


def _contract_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _offers(body: Mapping[str, Any]) -> tuple[list[Offer], int]:
    """The offers of a search answer, and how many it listed (those set aside included: what fills
    the search's limit). An answer whose every offer is set aside is malformed: no market is that."""
    raw = body.get("offers")
    if not isinstance(raw, list):
        raise ValueError(f"offers should be a list, got {type(raw).__name__}")
    offers: list[Offer] = []
    set_aside: list[tuple[str, ImplausibleOffer]] = []
    for entry in raw:
        try:
            offers.append(parse_offer(entry))
        except ImplausibleOffer as exc:  # one host's listing, not the answer: the rest is the market
            set_aside.append((_named(entry), exc))
    if set_aside and not offers:
        raise ValueError(f"every one of the {len(raw)} offers it listed was set aside (the first, "
                         f"{set_aside[0][0]}: {set_aside[0][1]})")
    for named, why in set_aside:
        log.warning("Vast %s set aside: %s", named, why)
    return offers, len(raw)


def _named(entry: Mapping[str, Any]) -> str:
    """An offer as a warning names it: by its id, else by its machine and GPU (its id is what is missing)."""
    if entry.get("id") is not None:
        return f"offer {entry['id']!r}"
    return f"offer without an id (machine {entry.get('machine_id')!r}, GPU {entry.get('gpu_name')!r})"


def _page(body: Mapping[str, Any]) -> tuple[list[Instance], str | None]:
    # {"instances": [...], "next_token": str | null}, the next page asked with after_token (vast-cli).
    raw = body.get("instances")
    if not isinstance(raw, list):
        raise ValueError(f"instances should be a list, got {type(raw).__name__}")
    token = body.get("next_token")
    if token is not None and not isinstance(token, str):
        raise ValueError("next_token should be a string")
    return [parse_instance(i) for i in raw], token

