"""Vast's REST API on the emulator's HTTP server (same port, key and clock as the RunPod API).

    POST   /api/v0/bundles/                      search offers (works without a key)
    PUT    /api/v0/asks/{offer_id}/              create (with "price": interruptible)
    GET    /api/v0/instances/{id}/               {"instances": {...}}
    GET    /api/v0/instances/                    {"instances": [...]} (the older listing)
    GET    /api/v1/instances/?limit=&after_token= {"instances": [...], "next_token": ...}
    PUT    /api/v0/instances/{id}/               {"state": "stopped"|"running"}
    PUT    /api/v0/instances/bid_price/{id}/     {"client_id": "me", "price": P}
    DELETE /api/v0/instances/{id}/               destroy

`answer` returns (status, JSON payload); faults and auth are the server's (`server.py`).
`operation` names a request for the emulator's malformed-answer rules ("vast:destroy", ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from bidder.sim.vast_world import VastError, VastWorld

__all__ = ["RATE_LIMIT_TEXT", "answer", "is_create", "is_vast_path", "operation"]


class Emulator(Protocol):
    """What these routes need of the emulator: its Vast world (a protocol, so nothing here imports
    the emulator that serves these routes)."""

    vast: VastWorld

#: Vast's 429 body [docs]; sent with no Retry-After.
RATE_LIMIT_TEXT = "API requests too frequent endpoint threshold=5.5"
_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
_SPECIAL = ("type", "order", "limit", "allocated_storage")
_ASK = re.compile(r"^/api/v0/asks/(\d+)/?$")
_INSTANCE = re.compile(r"^/api/v0/instances/(\d+)/?$")
_BID = re.compile(r"^/api/v0/instances/bid_price/(\d+)/?$")


def is_vast_path(path: str) -> bool:
    return path.startswith(("/api/v0/", "/api/v1/"))


def is_create(method: str, path: str) -> bool:
    return method == "PUT" and _ASK.match(path) is not None


def operation(method: str, path: str) -> str:
    """The name a malformed-answer rule gives this request: vast:search, vast:create, vast:bid_price,
    vast:show, vast:set_state, vast:destroy, vast:list (vast:other for a path with no route)."""
    if path.rstrip("/") == "/api/v0/bundles":
        return "vast:search"
    if _ASK.match(path):
        return "vast:create"
    if _BID.match(path):
        return "vast:bid_price"
    if _INSTANCE.match(path):
        return {"GET": "vast:show", "PUT": "vast:set_state", "DELETE": "vast:destroy"}.get(method, "vast:other")
    if path.rstrip("/") in ("/api/v0/instances", "/api/v1/instances"):
        return "vast:list"
    return "vast:other"


def _json(body: bytes) -> Any:
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError:
        raise VastError(400, "invalid_args", "the body must be a JSON object.") from None


def answer(emu: Emulator, method: str, path: str, params: Mapping[str, list[str]], body: bytes,
           authenticated: bool) -> tuple[int, dict[str, Any]]:
    try:
        return _route(emu, method, path, params, body, authenticated)
    except VastError as exc:
        return exc.status, exc.payload()


def _need_key(authenticated: bool) -> None:
    if not authenticated:
        raise VastError(401, "not_authenticated", "Authentication credentials were not provided.")


def _route(emu: Emulator, method: str, path: str, params: Mapping[str, list[str]], body: bytes,
           authenticated: bool) -> tuple[int, dict[str, Any]]:
    vast = emu.vast
    if path.rstrip("/") == "/api/v0/bundles" and method in ("POST", "PUT"):
        return 200, {"offers": _search(emu, _json(body))}
    _need_key(authenticated)
    if (match := _ASK.match(path)) and method == "PUT":
        request = _json(body)
        if not isinstance(request, dict):
            raise VastError(400, "invalid_args", "the body must be a JSON object.")
        return 200, {"success": True, "new_contract": vast.create(int(match.group(1)), request)}
    if (match := _BID.match(path)) and method == "PUT":
        request = _json(body)
        vast.change_bid(int(match.group(1)), request.get("price") if isinstance(request, dict) else None)
        return 200, {"success": True}
    if match := _INSTANCE.match(path):
        instance_id = int(match.group(1))
        if method == "GET":
            return 200, {"instances": vast.view(instance_id)}
        if method == "PUT":
            request = _json(body)
            vast.set_state(instance_id, request.get("state") if isinstance(request, dict) else None)
            return 200, {"success": True}
        if method == "DELETE":
            vast.destroy(instance_id)
            return 200, {"success": True}
    if path.rstrip("/") == "/api/v0/instances" and method == "GET":
        return 200, {"instances": vast.views()}
    if path.rstrip("/") == "/api/v1/instances" and method == "GET":
        return 200, _page(vast.views(), params)
    raise VastError(404, "not_found", f"no route {method} {path}")


def _page(views: list[dict[str, Any]], params: Mapping[str, list[str]]) -> dict[str, Any]:
    try:
        limit = min(25, max(1, int(params.get("limit", ["25"])[0])))
        after = int(params.get("after_token", ["0"])[0] or 0)
    except ValueError:
        raise VastError(400, "invalid_args", "limit and after_token must be whole numbers.") from None
    rest = [v for v in views if v["id"] > after]
    page = rest[:limit]
    token = str(page[-1]["id"]) if len(rest) > limit else None
    return {"instances": page, "next_token": token}


def _search(emu: Emulator, query: Any) -> list[dict[str, Any]]:
    if not isinstance(query, dict):
        raise VastError(400, "invalid_args", "the search query must be a JSON object.")
    if isinstance(query.get("q"), dict):  # the older {"q": {...}} wrapping
        query = {**query["q"], **{k: v for k, v in query.items() if k != "q"}}
    kind = query.get("type", "on-demand")
    if kind in ("ask", "ondemand"):
        kind = "on-demand"
    if kind not in ("on-demand", "bid", "reserved"):
        raise VastError(400, "invalid_args", f"type must be on-demand, bid or reserved, got {kind!r}.")
    storage = query.get("allocated_storage", 10.0)
    if isinstance(storage, bool) or not isinstance(storage, (int, float)) or storage < 0:
        raise VastError(400, "invalid_args", "allocated_storage must be a number of GB.")
    conditions = []
    for name, condition in query.items():
        if name in _SPECIAL:
            continue
        if not isinstance(condition, dict) or not all(op in _OPS for op in condition):
            raise VastError(400, "invalid_args", f"filter {name} must be {{op: value}} with op one of "
                                                 f"{', '.join(_OPS)}.")
        conditions.append((name, condition))
    offers = [o for o in emu.vast.offers(float(storage), "bid" if kind == "bid" else "on-demand")
              if all(_holds(_field(o, name), condition) for name, condition in conditions
                     if name in o or name in _DERIVED)]
    order = query.get("order") or []
    for entry in reversed(order if isinstance(order, list) else []):
        if isinstance(entry, list) and entry and isinstance(entry[0], str):
            desc = len(entry) > 1 and entry[1] == "desc"
            offers.sort(key=lambda o, f=entry[0]: (o.get(f) is None, o.get(f) or 0), reverse=desc)
    limit = query.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
        offers = offers[:limit]
    return offers


#: Filters on a field an answer does not carry as such: `verified` (a machine's `verification` text).
_DERIVED = {"verified": lambda o: o.get("verification") == "verified"}


def _field(offer: Mapping[str, Any], name: str) -> Any:
    return _DERIVED[name](offer) if name in _DERIVED else offer.get(name)


def _holds(value: Any, condition: Mapping[str, Any]) -> bool:
    for op, want in condition.items():
        try:
            if (op == "eq" and value != want) or (op == "neq" and value == want):
                return False
            if (op == "gt" and not value > want) or (op == "gte" and not value >= want):
                return False
            if (op == "lt" and not value < want) or (op == "lte" and not value <= want):
                return False
            if (op == "in" and value not in (want or [])) or (op == "notin" and value in (want or [])):
                return False
        except TypeError:
            return False
    return True
