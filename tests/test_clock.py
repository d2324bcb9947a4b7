"""One clock with the emulator (issue 9, part 1): the emulator tells its time on every answer, the
client remembers it, commands run on it, and time never runs backwards silently."""

from __future__ import annotations

import httpx
import pytest

from bidder.clock import SIM_NOW_HEADER, server_time
from bidder.sim import Emulator


# -- 1. the emulator tells its time ------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [("GET", "/sim/now"), ("POST", "/graphql"), ("POST", "/sim/advance"),
                                          ("GET", "/graphql"), ("GET", "/no/such/route"), ("PUT", "/graphql"),
                                          ("POST", "/api/v0/bundles/")])
def test_every_answer_carries_the_virtual_time(emulator: Emulator, method: str, path: str) -> None:
    emulator.advance(90)
    body = {"seconds": 0} if path == "/sim/advance" else {"query": "{ myself { id } }"}
    answer = httpx.request(method, emulator.base_url + path, json=body if method != "GET" else None, timeout=10)
    assert answer.headers[SIM_NOW_HEADER] == "2026-01-01T00:01:30Z"
    assert server_time(answer.headers) == emulator.now


def test_sim_now_answers_the_time_and_moves_with_advance(emulator: Emulator) -> None:
    assert httpx.get(emulator.base_url + "/sim/now", timeout=10).json() == {"now": "2026-01-01T00:00:00Z"}
    httpx.post(emulator.base_url + "/sim/advance", json={"seconds": 3600}, timeout=10)
    answer = httpx.get(emulator.base_url + "/sim/now", timeout=10)
    assert answer.json() == {"now": "2026-01-01T01:00:00Z"}
    assert answer.headers[SIM_NOW_HEADER] == "2026-01-01T01:00:00Z"
