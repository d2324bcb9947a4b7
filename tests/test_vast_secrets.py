"""The Vast key never leaks: a known key goes through every success and failure path of the Vast
client (401, 429, 500, timeout, dropped and refused connections, a lost create, a losing bid,
on-demand despite a bid, unknown instances, servers that echo the key), and every log record at
DEBUG, every exception's str/repr/traceback, every repr and every dry-run print is searched for it."""

from __future__ import annotations

import logging
import socket

import httpx
from client_helpers import canned_server
from test_secrets import Collected
from vast_helpers import cheapest, fast_retry, spec

from bidder.sim import Emulator
from bidder.vast import VastClient

SECRET = "vast_S3CRET0KEY0THAT0MUST0NEVER0SHOW0UP0ANYWHERE0000"


def test_the_vast_key_appears_nowhere(caplog):
    caplog.set_level(logging.DEBUG)
    seen = Collected()
    with Emulator(seed=0, api_key=SECRET) as emu:
        client = VastClient(api_key=SECRET, url=emu.vast_url, retry=fast_retry(2), rate_limit_base=0.01)
        # The faults' client times out fast (a 0.5 s delay); the successes' has the usual timeout.
        quick = VastClient(api_key=SECRET, url=emu.vast_url, retry=fast_retry(2), timeout=0.3, rate_limit_base=0.01)
        offers = client.search_offers(num_gpus=1)
        offer = cheapest(offers, 1)
        inst = client.create_interruptible(offer.id, spec(), offer.spot_floor_per_gpu, num_gpus=1)
        seen.texts += [repr(offers[:3]), repr(inst), repr(client.instances()), repr(client)]
        for request in (client.build_create_interruptible(offer.id, spec(), 0.3, num_gpus=1),
                        client.build_create_on_demand(offer.id, spec()), client.build_change_bid(inst.id, 0.3, 1),
                        client.build_stop(inst.id), client.build_start(inst.id), client.build_destroy(inst.id),
                        client.build_search(["RTX 4090"])):
            seen.texts += [request.to_text(client.url), repr(request)]
        other = offers[-1]
        for fault in ("429=1", "500=1", "timeout=1,delay=0.5", "drop=1", "lost_create=1"):
            emu.set_faults(fault)
            seen.call(quick.instances)
            seen.call(quick.create_on_demand, other.id, spec("x"))
        emu.set_faults(None)
        seen.call(lambda: client.create_interruptible(offers[1].id, spec("low"), 0.001, num_gpus=1))  # losing bid
        emu.vast.ignore_price = True
        seen.call(lambda: client.create_interruptible(offers[2].id, spec("od"), 0.5, num_gpus=1))
        emu.vast.ignore_price = False
        seen.call(client.instance, 1)
        seen.call(client.change_bid, 1, 0.3, 1)
        seen.call(client.create_on_demand, 1, spec())
        with Emulator(seed=0) as wrong_server:
            wrong = VastClient(api_key=SECRET, url=wrong_server.vast_url, retry=fast_retry(1))
            seen.call(wrong.search_offers)
            seen.call(wrong.instances)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen.call(VastClient(api_key=SECRET, url=f"http://127.0.0.1:{port}", retry=fast_retry(1)).search_offers)
    with canned_server() as server:
        echo = VastClient(api_key=SECRET, url=server.url.removesuffix("/graphql"), retry=fast_retry(1), timeout=2)
        for status, body in ((400, {"success": False, "error": "invalid_args", "msg": f"bad key {SECRET}"}),
                             (404, {"success": False, "error": "no_such_ask", "msg": SECRET}),
                             (500, f"<html>{SECRET}</html>"), (401, {"detail": SECRET}), (429, {"detail": SECRET}),
                             (200, {"offers": [{"id": SECRET}]}), (200, f"<html>{SECRET}</html>")):
            server.set(status, body)
            seen.call(echo.search_offers)
        assert server.seen[-1]["authorization"] == f"Bearer {SECRET}"  # positive control

    assert seen.errors == 24  # every path above that fails did fail (lost_create lets the listing through)
    logs = [caplog.text, *(r.getMessage() for r in caplog.records)]
    assert any("create_interruptible" in t for t in logs)
    leaks = [t for t in seen.texts + logs if SECRET in t or SECRET[5:25] in t]
    assert leaks == []


def test_the_emulators_log_hides_a_key_given_in_the_url_however_it_is_spelt(caplog):
    """`?api%5Fkey=KEY` (or API_KEY) was logged as sent: the scrub matched the literal `api_key=` only."""
    caplog.set_level(logging.DEBUG, logger="bidder.sim.server")
    with Emulator(seed=0, api_key=SECRET) as emu:
        for query in (f"api_key={SECRET}", f"api%5Fkey={SECRET}", f"API_KEY={SECRET}", f"x=1&Api%5FKey={SECRET}"):
            httpx.get(f"{emu.vast_url}/api/v1/instances/?{query}", timeout=10)
    lines = [r.getMessage() for r in caplog.records if "/api/v1/instances/" in r.getMessage()]
    assert len(lines) == 4 and all("=***" in line for line in lines), lines
    assert not any(SECRET[5:25] in line for line in lines), lines
    assert "x=1&" in lines[-1]  # other parameters stay readable
