"""The one place where Vast's answers become bidder errors (httpx exceptions: `bidder.runpod.errors_map.from_httpx`).

    HTTP 401 / 403                                  -> AuthError
    HTTP 429 (no Retry-After from Vast)             -> RateLimited(retry_after = the client's computed back-off)
    HTTP 5xx, 408, a body that is not JSON          -> TransportError(maybe_executed=True)
    error "no_such_instance" (any status)           -> PodNotFound
    error "no_such_ask", HTTP 404 / 410             -> NoCapacity (also "invalid_args" whose text says the
                                                       offer is not available: Vast's create answer then)
    HTTP 404 / 405 with a body not Vast's            -> TransportError (no route there: a wrong URL)
    error "invalid_args" / "invalid_price", HTTP 400 -> GraphQLError (the generic API refusal)
    a 200 with "success": false                     -> by its error code, as above

Vast's error bodies look like `{"success": false, "error": "no_such_ask", "msg": "..."}` [docs for
the codes; vast-cli reads `msg`]; rate limits like `{"detail": "API requests too frequent ..."}`.
Messages carry the operation, the status and Vast's own text, scrubbed of the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bidder.errors import (
    ApiError,
    AuthError,
    GraphQLError,
    NoCapacity,
    PodNotFound,
    RateLimited,
    TransportError,
)
from bidder.runpod.errors_map import json_or_none, scrub

__all__ = [
    "NOT_FOUND_CODES",
    "NO_CAPACITY_CODES",
    "classify",
    "decode_response",
    "error_fields",
    "unexpected",
]

#: Error codes meaning "this offer cannot be rented now" [docs].
NO_CAPACITY_CODES = frozenset({"no_such_ask"})
#: Error codes meaning "no such instance" [docs].
NOT_FOUND_CODES = frozenset({"no_such_instance"})
#: Where the key comes from (the environment first, then the user's config file): both are named.
_KEY_HINT = "check VAST_API_KEY, or vast_api_key in ~/.config/bidder/config.toml"


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(error code, human text) of a Vast error body; (None, None) when it has neither."""
    if not isinstance(body, Mapping):
        return None, None
    code = body.get("error")
    text = body.get("msg") or body.get("message") or body.get("detail")
    return (str(code) if code is not None and not isinstance(code, bool) else None,
            str(text) if text is not None else None)


#: Lower-case fragments of Vast's texts for an offer no longer to be had.
_OFFER_GONE_TEXTS = ("no_such_ask", "is not available", "no longer available")


def _vast_shaped(body: Any) -> bool:
    """Whether a body reads as Vast's own answer (its refusals carry some of these fields)."""
    return isinstance(body, Mapping) and any(k in body for k in ("success", "error", "msg", "message", "detail"))


def classify(operation: str, status: int | None, code: str | None, text: str | None, *,
             instance_id: int | None = None, secret: str | None = None) -> ApiError:
    """The bidder error for a Vast refusal (see the module docstring)."""
    said = "; ".join(scrub(part, secret) for part in (code, text) if part) or "no details"
    message = f"{operation}: {said}" + (f" (HTTP {status})" if status else "")
    kwargs: dict[str, Any] = {"operation": operation, "status": status,
                              "messages": (scrub(text, secret),) if text else (), "codes": (code,)}
    if code in NOT_FOUND_CODES:
        return PodNotFound(message, pod_id=None if instance_id is None else str(instance_id), **kwargs)
    gone = status in (404, 410) and text is not None and any(t in text.lower() for t in _OFFER_GONE_TEXTS)
    if code in NO_CAPACITY_CODES or (code is None and status in (404, 410)) or gone:
        # (Vast answers a create on an offer taken meanwhile with 404 `invalid_args`, "... no_such_ask
        # Instance type by id N is not available.": the next offer is tried, as for `no_such_ask`.)
        return NoCapacity(message, **kwargs)
    return GraphQLError(message, **kwargs)


def decode_response(response: httpx.Response, operation: str, *, instance_id: int | None = None,
                    secret: str | None = None) -> Mapping[str, Any]:
    """The JSON object of a successful answer; raises the bidder error of any other answer.

    A 429 raises RateLimited with retry_after None: the client puts its own computed back-off
    there before the error reaches the caller (Vast sends no Retry-After [docs]).
    """
    status = response.status_code
    body = json_or_none(response)
    code, text = error_fields(body)
    if status in (401, 403):
        detail = f": {scrub(text, secret)}" if text else ""
        raise AuthError(f"{operation}: Vast refused the key (HTTP {status}){detail}; {_KEY_HINT}",
                        operation=operation, status=status)
    if status == 429:
        detail = f": {scrub(text, secret)}" if text else ""
        raise RateLimited(f"{operation}: rate limited by Vast (HTTP 429){detail}", operation=operation)
    if status >= 500 or status == 408:
        detail = f": {scrub(text, secret)}" if text else ""
        raise TransportError(f"{operation}: server error (HTTP {status}){detail}", operation=operation,
                             status=status, maybe_executed=True)
    if status in (404, 405) and code is None and not _vast_shaped(body):
        # No route there (Vast's refusals carry `error` or `msg`): a wrong URL, not an offer gone.
        try:
            path = scrub(response.request.url.path, secret)
        except RuntimeError:  # a response built without its request
            path = "the Vast URL"
        raise TransportError(f"{operation}: HTTP {status} at {path}, not an answer of Vast's API: is the Vast URL "
                             "right? (Vast's is https://console.vast.ai; check --vast-url or VAST_URL)",
                             operation=operation, status=status, maybe_executed=True, market="vast")
    if status >= 400:
        if code is None and text is None and body is None:
            text = scrub(response.text, secret) or None
        raise classify(operation, status, code, text, instance_id=instance_id, secret=secret)
    if status != 200 and status != 201:
        raise TransportError(f"{operation}: unexpected HTTP {status} from Vast (is the URL Vast's console?)",
                             operation=operation, status=status, maybe_executed=status >= 300)
    if not isinstance(body, Mapping):
        kind = scrub(response.headers.get("Content-Type", "no content type"), secret)
        raise TransportError(f"{operation}: Vast answered HTTP {status} with a body that is not a JSON object "
                             f"({kind})", operation=operation, status=status, maybe_executed=True)
    if body.get("success") is False:
        raise classify(operation, status, code, text, instance_id=instance_id, secret=secret)
    return body


def unexpected(operation: str, exc: Exception, secret: str | None = None) -> ApiError:
    """A well-formed JSON answer of the wrong shape (Vast changed). Parsers name fields, never values."""
    return ApiError(f"{operation}: unexpected answer from Vast: {scrub(str(exc), secret)}", operation=operation,
                    status=200)
