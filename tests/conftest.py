"""Shared fixtures. Each area adds its own fixtures here in small, separate blocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bidder.sim import Emulator


# -- emulator (owner: emulator area) ---------------------------------------------------------------
@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh RunPod emulator on 127.0.0.1 (seed 0, virtual clock at 2026-01-01T00:00Z, faults
    off, spot on, reclaim rate 0.01/hour: set `emulator.world.reclaim_rate_per_hour = 0` to rule
    reclaims out). Stopped, with every thread joined, after the test."""
    with Emulator(seed=0) as emu:
        yield emu
