"""The one place where httpx exceptions and RunPod's answers become bidder errors.

    httpx.ConnectError, ConnectTimeout, PoolTimeout,     -> TransportError(maybe_executed=False)
      UnsupportedProtocol, ProxyError, LocalProtocolError   (the request never left)
    httpx.ReadTimeout, WriteTimeout, ReadError, WriteError,  -> TransportError(maybe_executed=True)
      RemoteProtocolError, CloseError, DecodingError, ...    (it may have reached the server)
    HTTP 401                                                 -> AuthError
    HTTP 429 (JSON or an HTML page)                          -> RateLimited(retry_after)
    HTTP 403 (a key with Read Only GraphQL access, a proxy)  -> TransportError, saying both
    HTTP 5xx, 408, other unexpected status                   -> TransportError
    HTTP 200 with a body that is not JSON (HTML, truncated,  -> MalformedAnswer (maybe executed)
      nested too deep), or without data and errors
    HTTP 400 / 200 with `errors`                             -> GraphQLError, or by the message TEXT:
        validation error naming a spot field or input type   -> SpotUnsupported
        "no instances available", "no longer any instances",
        "does not have the resources"                        -> NoCapacity
        "pod not found ..."                                  -> PodNotFound
        code UNAUTHENTICATED / "must be authenticated"       -> AuthError
    a 200 whose data has the wrong shape                     -> MalformedAnswer (maybe executed)

RunPod's status codes are not reliable (business errors come as 200), so GraphQL errors are
classified by their text (RUNPOD_API.md, "Error messages seen"). Messages are built from the
operation name, the status and the server's text only; `scrub` removes the API key from server
text too, in case a server ever echoes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bidder.errors import (
    ApiError,
    AuthError,
    GraphQLError,
    MalformedAnswer,
    NoCapacity,
    PodNotFound,
    RateLimited,
    SpotUnsupported,
    TransportError,
)

__all__ = [
    "HTTPX_CAUGHT",
    "NOT_SENT",
    "NO_CAPACITY_TEXTS",
    "POD_NOT_FOUND_TEXTS",
    "SPOT_NAMES",
    "classify_graphql",
    "decode_response",
    "from_httpx",
    "json_or_none",
    "mask_known",
    "mask_secret",
    "parse_retry_after",
    "remember_secret",
    "scrub",
    "shape_error",
]

#: Lower-case fragments of RunPod's "no capacity" messages.
NO_CAPACITY_TEXTS = ("no instances available", "no longer any instances", "does not have the resources")
#: Lower-case fragments of "unknown pod" messages ("pod not found to terminate", "... to stop").
POD_NOT_FOUND_TEXTS = ("pod not found", "could not find pod", "pod does not exist")
#: Names that exist only for spot pods: a validation error naming one means RunPod dropped spot.
SPOT_NAMES = ("podRentInterruptable", "podBidResume", "bidPerGpu", "PodRentInterruptableInput",
              "PodBidResumeInput", "minimumBidPrice", "secureSpotPrice", "communitySpotPrice",
              "lowestBidPriceToResume")
_VALIDATION = re.compile(r"cannot query field|unknown type|unknown argument|is not defined by type|"
                         r"unknown field|field .* is not defined|does not exist on type", re.IGNORECASE)
_SPOT_RETIRED = re.compile(r"(spot|interruptable|interruptible|bid).*(no longer (supported|available)|"
                           r"not supported|been removed|deprecated|retired)", re.IGNORECASE)
_QUOTED_SPOT = re.compile(r"[\"'](" + "|".join(SPOT_NAMES) + r")[\"']")
_AUTH_TEXTS = ("must be authenticated", "unauthorized", "invalid api key", "api key is invalid")

#: httpx errors raised before a single byte of the request reached a server.
NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                                          httpx.UnsupportedProtocol, httpx.ProxyError, httpx.LocalProtocolError,
                                          httpx.InvalidURL)
#: What the client catches around a send: every exception httpx raises from `Client.post`.
HTTPX_CAUGHT: tuple[type[Exception], ...] = (httpx.HTTPError, httpx.InvalidURL)
_MAX_TEXT = 300


#: Where the key comes from (the environment first, then the user's config file): both are named.
_KEY_HINT = "check RUNPOD_API_KEY, or api_key in ~/.config/bidder/config.toml"


#: The shortest piece of a key that is masked: servers quote the start of a bad key ("rpa_SECRET...").
#: Shorter pieces of a long random key give nothing away, and would mask ordinary words.
MIN_SECRET_PIECE = 12
#: Every API key a client of this process was given: the log filter (`bidder -vv`) masks them.
_KNOWN_SECRETS: set[str] = set()


def remember_secret(secret: str) -> None:
    """Record a key this process sends, for `mask_known` (the log filter)."""
    if len(secret) >= MIN_SECRET_PIECE:
        _KNOWN_SECRETS.add(secret)


def mask_secret(text: str, secret: str | None) -> str:
    """`text` with every piece of `secret` at least MIN_SECRET_PIECE long, in any letter case (a server
    that quotes the key's start, or lower-cases it), replaced by ***; and so every other key this
    process holds (a gateway in front of both markets may quote the other market's key)."""
    return _masked(text, (secret, *_KNOWN_SECRETS))


def mask_known(text: str) -> str:
    """`text` with every key this process was given masked (see `remember_secret`)."""
    return _masked(text, _KNOWN_SECRETS)


def _masked(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every piece of each secret replaced by ***, all found in the text as given: masked
    one after another, a key sharing a piece with another (zero-padded keys do) kept the characters the
    first mask had cut from its run."""
    if not text:
        return text
    hidden = [False] * len(text)
    for secret in secrets:
        if secret:
            _mark(text, secret, hidden)
    if not any(hidden):
        return text
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            out.append("***")
            while i < len(text) and hidden[i]:
                i += 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _mark(text: str, secret: str, hidden: list[bool]) -> None:
    """Mark in `hidden` the characters of `text` inside `secret` itself (a short one) or inside any piece
    of it MIN_SECRET_PIECE long, in any letter case."""
    if len(secret) < MIN_SECRET_PIECE:
        at = text.find(secret)
        while at >= 0:
            hidden[at:at + len(secret)] = [True] * len(secret)
            at = text.find(secret, at + 1)
        return
    n = MIN_SECRET_PIECE
    key = secret.lower()
    pieces = {key[i:i + n] for i in range(len(key) - n + 1)}
    low = text.lower()
    for i in range(len(text) - n + 1):
        if low[i:i + n] in pieces:
            hidden[i:i + n] = [True] * n


def scrub(text: str, secret: str | None) -> str:
    """`text` on one line, shortened, with the secret (if any), or any long piece of it, replaced by ***."""
    text = mask_secret(text, secret)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "..."


def _what(exc: BaseException) -> str:
    kinds = {httpx.ConnectTimeout: "connecting timed out", httpx.ReadTimeout: "no answer within the timeout",
             httpx.WriteTimeout: "sending timed out", httpx.PoolTimeout: "no free connection within the timeout",
             httpx.ConnectError: "cannot connect", httpx.RemoteProtocolError: "the server closed the connection",
             httpx.ReadError: "the connection broke while reading the answer",
             httpx.WriteError: "the connection broke while sending"}
    for cls, text in kinds.items():
        if isinstance(exc, cls):
            return text
    return type(exc).__name__


def from_httpx(exc: Exception, operation: str, url: str, secret: str | None = None, *,
               market: str = "runpod", changes: bool = True) -> ApiError:
    """The bidder error for an exception httpx raised while sending `operation` to `url` (of `market`).
    `changes`: the request changes something (a mutation, a PUT or DELETE): only then does its text say it
    may have been executed (of a read that timed out it made no sense)."""
    detail = scrub(str(exc), secret)
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return TransportError(f"{operation}: the API URL {scrub(url, secret)!r} is not usable: {detail}",
                              operation=operation, maybe_executed=False, market=market)
    maybe_executed = not isinstance(exc, NOT_SENT)
    text = f"{operation}: {_what(exc)} ({scrub(url, secret)})"
    if detail and detail not in text:
        text += f": {detail}"
    if maybe_executed and changes:
        text += "; the request may have been executed"
    return TransportError(text, operation=operation, maybe_executed=maybe_executed, market=market)


def parse_retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date taken relative to the response's own Date
    header (so no clock is read here). None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
            sent = parsedate_to_datetime(response.headers.get("Date", ""))
            if when is None or sent is None:
                return None
            # "-0000" dates parse naive: HTTP dates are always GMT.
            seconds = (when.replace(tzinfo=when.tzinfo or UTC) - sent.replace(tzinfo=sent.tzinfo or UTC)
                       ).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def _errors_of(body: Any) -> tuple[tuple[str, ...], tuple[str | None, ...]] | None:
    if not isinstance(body, Mapping) or not isinstance(body.get("errors"), list) or not body["errors"]:
        return None
    messages, codes = [], []
    for entry in body["errors"]:
        if isinstance(entry, Mapping):
            messages.append(str(entry.get("message") or "(no message)"))
            ext = entry.get("extensions")
            code = ext.get("code") if isinstance(ext, Mapping) else None
            codes.append(str(code) if code is not None else None)
        else:
            messages.append(str(entry))
            codes.append(None)
    return tuple(messages), tuple(codes)


def classify_graphql(messages: tuple[str, ...], codes: tuple[str | None, ...], *, operation: str,
                     status: int | None, pod_id: str | None = None, secret: str | None = None) -> ApiError:
    """The bidder error for GraphQL `errors` entries, chosen by their text (first match wins, in
    the order spot retired > not authenticated > no capacity > pod not found > generic)."""
    clean = tuple(scrub(m, secret) for m in messages)
    text = f"{operation}: " + "; ".join(clean)
    kwargs: dict[str, Any] = {"operation": operation, "status": status, "messages": clean, "codes": codes}
    lowered = [m.lower() for m in clean]
    if any((_VALIDATION.search(m) and _QUOTED_SPOT.search(m)) or _SPOT_RETIRED.search(m) for m in clean):
        return SpotUnsupported(text + " (RunPod no longer offers spot pods through this API)", **kwargs)
    if "UNAUTHENTICATED" in codes or any(t in m for m in lowered for t in _AUTH_TEXTS):
        return AuthError(text + f" ({_KEY_HINT})", operation=operation, status=status)
    if any(t in m for m in lowered for t in NO_CAPACITY_TEXTS):
        return NoCapacity(text, **kwargs)
    if any(t in m for m in lowered for t in POD_NOT_FOUND_TEXTS):
        return PodNotFound(text, pod_id=pod_id, **kwargs)
    return GraphQLError(text, **kwargs)


def json_or_none(response: httpx.Response) -> Any:
    """The answer's JSON body, or None when it is not JSON (or is nested too deep to read)."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        return None


def decode_response(response: httpx.Response, operation: str, *, pod_id: str | None = None,
                    secret: str | None = None) -> Mapping[str, Any]:
    """The `data` object of a successful answer; raises the bidder error of any other answer."""
    status = response.status_code
    body = json_or_none(response)
    errors = _errors_of(body)
    if status == 401:
        raise AuthError(f"{operation}: the API refused the key (HTTP 401): {_KEY_HINT}",
                        operation=operation, status=401)
    if status == 429:
        retry_after = parse_retry_after(response)
        when = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        raise RateLimited(f"{operation}: rate limited (HTTP 429){when}", operation=operation,
                          retry_after=retry_after)
    if status >= 500 or status == 408:
        said = f": {'; '.join(scrub(m, secret) for m in errors[0])}" if errors else ""
        raise TransportError(f"{operation}: server error (HTTP {status}){said}", operation=operation,
                             status=status, maybe_executed=True)
    if status == 400:
        if errors is None:
            first = scrub(response.text, secret) if body is None else scrub(json.dumps(body), secret)
            errors = ((f"HTTP 400: {first}",), (None,))
        raise classify_graphql(*errors, operation=operation, status=400, pod_id=pod_id, secret=secret)
    if status in (404, 410):  # no endpoint here: a mistyped URL, or (from early 2027) RunPod's GraphQL retired
        raise TransportError(f"{operation}: HTTP {status} from the API: no GraphQL endpoint at this URL (mistyped? "
                             "or RunPod has retired its GraphQL API, planned for early 2027: then unset "
                             "RUNPOD_API_KEY, or set market = \"vast\", to run on Vast alone)",
                             operation=operation, status=status, maybe_executed=True)  # a proxy's 404 proves nothing
    if status == 403:  # (said apart: "is the URL a GraphQL endpoint?" sent a read-only key's owner astray)
        raise TransportError(f"{operation}: HTTP 403 (forbidden) from the API: the key may not be allowed this "
                             "operation (a RunPod key whose GraphQL access is Read Only or None can read prices but "
                             "not create, resume or stop pods: give bidder one with Read/Write access), or a proxy or "
                             "firewall refused the request", operation=operation, status=status, maybe_executed=True)
    if status != 200:
        raise TransportError(f"{operation}: unexpected HTTP {status} from the API (is the URL a GraphQL "
                             f"endpoint?)", operation=operation, status=status, maybe_executed=status >= 300)
    if body is None:
        kind = scrub(response.headers.get("Content-Type", "no content type"), secret)
        raise MalformedAnswer(f"{operation}: the API answered HTTP 200 with a body that is not JSON ({kind})",
                              operation=operation, status=status)
    if errors is not None:
        raise classify_graphql(*errors, operation=operation, status=status, pod_id=pod_id, secret=secret)
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        raise MalformedAnswer(f"{operation}: the API answered without data or errors", operation=operation,
                              status=status)
    return data


def shape_error(operation: str, exc: BaseException, secret: str | None = None) -> MalformedAnswer:
    """A well-formed JSON answer whose content has the wrong shape (the API changed, or it answered
    wrongly). The parsers name fields and JSON types, never values; the text is scrubbed all the same."""
    detail = "nested too deep" if isinstance(exc, RecursionError) else scrub(str(exc), secret)
    return MalformedAnswer(f"{operation}: unexpected answer from the API: {detail}", operation=operation)
