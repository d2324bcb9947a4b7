"""`Emulator`: a RunPod-compatible API on 127.0.0.1 over a seeded world on a virtual clock.

    from bidder.sim import Emulator, TEST_API_KEY
    with Emulator(seed=0) as emu:          # serves on a free port in a background thread
        emu.url                            # http://127.0.0.1:PORT/graphql
        emu.advance(3600)                  # an hour passes: prices move, pods bill, spot pods may stop
        emu.world.set_floor("NVIDIA RTX A6000", "COMMUNITY", 0.9)

Spot can be retired in two stages, as RunPod is doing: `spot_enabled=False` (or
`set_spot_enabled(False)`) removes the spot mutations and every floor reads null; adding
`spot_fields=False` also removes the spot price fields (minimumBidPrice, secure/communitySpotPrice)
from the schema, so a price query that still asks for them gets HTTP 400.

The same server speaks Vast's REST API (`vast_url`, `vast`: the `VastWorld`) with the same key
and clock; `spot_enabled` is RunPod's alone.

Time moves only through `advance` (or `POST /sim/advance`), unless `speed` is given: then a pacer
moves it by `speed` market seconds per real second (for `bidder sim serve --speed N`). Every HTTP
answer carries the virtual time in `X-Bidder-Sim-Now` (RunPod never sends it): bidder's commands
take it as their clock (`bidder.clock`). `GET /sim/now` reads it; `GET /sim/pods` is the world's own
account of every pod (billed, running hours, interruptions).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from bidder.errors import ConfigError
from bidder.sim.clock import Pacer
from bidder.sim.faults import FaultInjector, FaultSpec, Malformed, MalformedRules
from bidder.sim.server import EmulatorHTTPServer
from bidder.sim.vast_world import VastWorld
from bidder.sim.world import World

__all__ = ["TEST_API_KEY", "Emulator"]

#: The key the emulator accepts unless told otherwise. Not a secret: it only opens the emulator.
TEST_API_KEY = "rpa_BIDDERTESTKEY0000000000000000000000000000EMULATOR"


def _faults(value: FaultSpec | str | None) -> FaultSpec | None:
    if value is None or isinstance(value, FaultSpec):
        return value
    if isinstance(value, str):
        return FaultSpec.parse(value)
    raise ConfigError(f"faults must be a FaultSpec, a text like '429=0.2,drop=0.05' or None, got {value!r}",
                      key="faults")


class Emulator:
    """A started-on-demand RunPod emulator. Use as a context manager, or `start()`/`stop()`."""

    def __init__(self, seed: int = 0, api_key: str = TEST_API_KEY, start: datetime | None = None,
                 trace: str | Path | None = None, faults: FaultSpec | str | None = None,
                 spot_enabled: bool = True, *, port: int = 0, speed: float | None = None,
                 reclaim_rate_per_hour: float = 0.01, client_balance: float = 1000.0,
                 spend_limit: float = 80.0, spot_fields: bool = True, vast_machines: int = 300) -> None:
        if not api_key:
            raise ConfigError("the emulator needs a non-empty API key to accept", key="api_key")
        if speed is not None and not speed > 0:
            raise ConfigError(f"speed must be > 0 market seconds per real second, got {speed!r}", key="speed")
        self.seed = seed
        self.api_key = api_key
        self.port = port
        self.speed = speed
        self.world = World(seed=seed, start=start, trace=trace, reclaim_rate_per_hour=reclaim_rate_per_hour,
                           client_balance=client_balance, spend_limit=spend_limit)
        self.vast = VastWorld(seed, lambda: self.world.now_s, self.world.lock, machines=vast_machines)
        self.fault_injector: FaultInjector | None = None
        self.malformed = MalformedRules()
        self.set_faults(faults)
        self.set_spot_enabled(spot_enabled, fields=spot_fields)
        self._server: EmulatorHTTPServer | None = None
        self._pacer: Pacer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self.world.warm()
        self._server = EmulatorHTTPServer(self, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="bidder-sim-server", daemon=True)
        self._thread.start()
        if self.speed is not None:
            self._pacer = Pacer(self.speed, self.advance)
            self._pacer.start()
        return self

    def stop(self) -> None:
        """Stop the pacer and the server, close every connection, join every thread."""
        if self._pacer is not None:
            self._pacer.stop()
            self._pacer = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:  # never shows the key
        state = self.url if self._server is not None else "stopped"
        return f"Emulator(seed={self.seed}, {state}, now={self.now.isoformat()})"

    # -- what tests and the CLI use ------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running: use `with Emulator() as emu:` or emu.start()")
        return self._server.url

    @property
    def vast_url(self) -> str:
        """Vast's base URL (http://127.0.0.1:PORT): give it to VastClient(url=...) or VAST_URL."""
        return self.url.removesuffix("/graphql")

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (for /sim/advance and /sim/now)."""
        return self.url.removesuffix("/graphql")

    @property
    def now(self) -> datetime:
        return self.world.now

    def advance(self, seconds: float) -> datetime:
        """Move virtual time forward; returns the new time."""
        return self.world.advance(seconds)

    def set_faults(self, faults: FaultSpec | str | None) -> None:
        """Turn fault injection on (a FaultSpec or its text form) or off (None). Seeded by the seed."""
        spec = _faults(faults)
        self.fault_injector = FaultInjector(spec, self.seed) if spec is not None and spec.active else None

    def malform(self, operation: str, body: Any, *, status: int = 200, execute: bool = True,
                times: int | None = 1, headers: dict[str, str] | None = None,
                content_type: str = "application/json") -> Malformed:
        """Spoil the next `times` answers to `operation` (see bidder.sim.faults: Malformed)."""
        return self.malformed.add(Malformed(operation, body, status=status, execute=execute, times=times,
                                            headers=dict(headers or {}), content_type=content_type))

    def clear_malformed(self) -> None:
        self.malformed.clear()

    @property
    def faults(self) -> FaultSpec | None:
        return None if self.fault_injector is None else self.fault_injector.spec

    @property
    def spot_enabled(self) -> bool:
        return self.world.spot_enabled

    def set_spot_enabled(self, enabled: bool, *, fields: bool = True) -> None:
        """False: the schema loses podRentInterruptable/podBidResume and every floor reads null.
        With `fields=False` too, the spot price fields leave the schema as well (see the module doc)."""
        if enabled and not fields:
            raise ConfigError("the spot price fields can only be removed together with the spot mutations: "
                              "pass spot_enabled=False as well", key="spot_fields")
        with self.world.lock:
            self.world.spot_enabled = bool(enabled)
            self.spot_fields = bool(fields)
