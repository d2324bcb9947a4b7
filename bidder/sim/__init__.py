"""bidder's RunPod-compatible emulator: RunPod's GraphQL wire format on 127.0.0.1, over a seeded
market of real RunPod GPU types on a virtual clock, with fault injection and a spot switch.

    from bidder.sim import Emulator, TEST_API_KEY, FaultSpec, generate_trace, generate_quotes

Modules: `catalog` (GPU types), `prices` (floor model, trace replay, generate_trace/generate_quotes), `world`
(machines, pods, billing, interruptions), `vast_world` / `vast_routes` / `vast_trace` (Vast's market,
instances and REST API), `clock`, `faults`, `resolvers` (schema + resolvers),
`server` (HTTP, serving any `ServedEmulator`), `emulator` (the `Emulator` that ties them together).
It imports only bidder's neutral types (`models`, `units`, `errors`, `traces`), never a client, the
store, the executor or the CLI: it stands beside bidder as RunPod and Vast do.
Exports (`__all__`): see below.
"""

from __future__ import annotations

from bidder.sim.emulator import TEST_API_KEY, Emulator
from bidder.sim.faults import FaultSpec
from bidder.sim.prices import generate_quotes, generate_trace
from bidder.sim.vast_world import VastWorld, generate_vast_quotes, generate_vast_trace
from bidder.sim.world import World

__all__ = ["TEST_API_KEY", "Emulator", "FaultSpec", "VastWorld", "World", "generate_quotes", "generate_trace",
           "generate_vast_quotes", "generate_vast_trace"]
