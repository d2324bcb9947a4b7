"""`bidder sim serve` (run the RunPod emulator) and `bidder sim trace` (sample its market model)."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from bidder.cli import main
from bidder.cli.common import DURATION, MAX_DAYS, MAX_RECLAIM_RATE, FiniteRange, say_naive, write_file
from bidder.clock import too_late
from bidder.errors import ConfigError
from bidder.units import YearTooEarly, format_duration, is_naive, parse_timestamp, to_iso

__all__ = ["sim"]


def _faults(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    from bidder.sim import FaultSpec

    try:
        return FaultSpec.parse(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _start(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        start = parse_timestamp(value)
    except YearTooEarly as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-01-01T00:00:00Z",
                                 ctx=ctx, param=param) from None
    if is_naive(value):
        say_naive("--start", value)
    return start


@main.group("sim")
def sim() -> None:
    """bidder's emulator of RunPod's GraphQL API and Vast's REST API: seeded markets, one virtual clock.

    \b
    Example:
      bidder sim serve --port 8765 --seed 1
    """


def _replayed(trace: Path, emu: Any) -> str:
    """How the emulator plays `trace`: at its own times, or shifted to the virtual start."""
    offset = emu.world.trace_offset_s
    other = emu.world.trace_other_rows
    # (Vast's API serves the emulator's offer model whatever the trace: a Vast row is not replayed)
    left = f" (RunPod's rows; its {other} Vast rows are not replayed: Vast's API serves the model)" if other else ""
    if not offset:
        return f"trace {trace}, at its own times{left}"
    return (f"trace {trace}, its first row ({to_iso(emu.now - timedelta(seconds=offset))}) played at the start, "
            f"{format_duration(abs(offset))} {'later' if offset > 0 else 'earlier'} than its own times{left}")


@sim.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--api-key", default=None, metavar="KEY",
              help="The key to accept (default: the fixed test key, printed at start).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the market, capacity, reclaims and faults.")
@click.option("--trace", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Replay this trace CSV (format: docs/traces.md) instead of the market model.")
@click.option("--start", callback=_start, default=None, metavar="TIME",
              help="Virtual start time, ISO 8601 (default 2026-01-01T00:00:00Z, or the trace's first row). With "
                   "--trace, a time within the trace replays it from there at its own times; a time outside it "
                   "replays the trace from its first row at that time.")
@click.option("--speed", type=FiniteRange(min=0, min_open=True, max=1e6), default=None, metavar="N",
              help="Move the clock N market seconds per real second (default: only on POST /sim/advance).")
@click.option("--faults", callback=_faults, default=None, metavar="SPEC",
              help="Inject faults, e.g. '429=0.2,500=0.1,timeout=0.05,drop=0.05,lost_create=1,delay=2'.")
@click.option("--no-spot", is_flag=True, help="Serve the schema without spot mutations (RunPod after spot ends).")
@click.option("--no-spot-fields", is_flag=True,
              help="Also drop the spot price fields (minimumBidPrice, secure/communitySpotPrice); implies --no-spot.")
@click.option("--reclaim-rate", type=FiniteRange(min=0, max=MAX_RECLAIM_RATE), default=0.01, show_default=True,
              help="Spot reclaims per running hour that no bid avoids.")
def serve(port: int, api_key: str | None, seed: int, trace: Path | None, start: datetime | None,
          speed: float | None, faults: object, no_spot: bool, no_spot_fields: bool, reclaim_rate: float) -> None:
    """Run the emulator until Ctrl-C. The first line of output is its GraphQL URL.

    Point any bidder command at it with --api-url URL (or RUNPOD_API_URL) and RUNPOD_API_KEY set
    to the printed key. The same port serves Vast's REST API (its base URL is printed last; use it
    as --vast-url / VAST_URL with VAST_API_KEY set to the same key). Move its clock with:
    curl -X POST URL_BASE/sim/advance -d '{"seconds": 3600}'; read it with: curl URL_BASE/sim/now.
    Every answer carries the virtual time in the X-Bidder-Sim-Now header, and every bidder command
    pointed at the emulator runs on that clock. Its own account of every pod and Vast instance (billed,
    running hours, interruptions): curl URL_BASE/sim/pods.

    \b
    Example:
      bidder sim serve --port 8765 --seed 1 --faults '429=0.1,drop=0.02'
    """
    from bidder.sim import TEST_API_KEY, Emulator

    if api_key is not None and not api_key.strip():
        raise click.BadParameter("must not be empty (leave it out for the test key)", param_hint="--api-key")
    if api_key is not None:
        from bidder.runpod.client import api_key_fault

        api_key = api_key.strip()  # (as a client sends it)
        fault = api_key_fault(api_key)
        if fault is not None:  # no client could send it: every request would get 401
            raise click.BadParameter(f"holds {fault}: no client can send such a key; give printable ASCII "
                                     "without spaces", param_hint="--api-key")
    # The emulator's clock is the time of every command pointed at it (bidder.clock.LAST_NOW).
    if start is not None and too_late(start):
        raise click.BadParameter(f"{to_iso(start)} {too_late(start)}: give an earlier time", param_hint="--start")
    emu = Emulator(seed=seed, api_key=api_key or TEST_API_KEY, start=start, trace=trace, faults=faults,  # type: ignore[arg-type]
                   spot_enabled=not (no_spot or no_spot_fields), spot_fields=not no_spot_fields, port=port,
                   speed=speed, reclaim_rate_per_hour=reclaim_rate)
    late = too_late(emu.now)
    if late is not None:  # a trace's first row
        raise click.BadParameter(f"{trace} starts at {to_iso(emu.now)}, which {late}: give --start TIME, an "
                                 "earlier time to replay it from", param_hint="--trace")
    try:
        emu.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; "
                                   f"pick another --port (0 = any free one)") from None
    stop = threading.Event()

    def _on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        click.echo(emu.url)
        click.echo(f"API key: {emu.api_key}")
        clock = (f"moves {speed:g} market seconds per real second" if speed
                 else f"moves on POST {emu.base_url}/sim/advance {{\"seconds\": N}}")
        click.echo(f"Virtual clock at {to_iso(emu.now)}; it {clock}.")
        spot = ("off, spot price fields removed" if no_spot_fields else "off" if no_spot else "on")
        click.echo(f"Market: {_replayed(trace, emu) if trace else f'model, seed {seed}'}; spot {spot}; "
                   f"faults {emu.faults or 'off'}.")
        click.echo(f"Read it with GET {emu.base_url}/sim/now; every answer carries it in the X-Bidder-Sim-Now "
                   "header, and bidder commands pointed here run on it.")
        click.echo("Press Ctrl-C to stop.")
        click.echo(f"Vast API (VAST_URL, same key): {emu.vast_url}")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emu.stop()
    click.echo(f"Stopped at virtual time {to_iso(emu.now)}.")


@sim.command("trace")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the market model.")
@click.option("--days", type=FiniteRange(min=0, min_open=True, max=MAX_DAYS), default=7.0, show_default=True,
              help="Length of the trace in days.")
@click.option("--step", type=DURATION, default="5m", show_default=True, help="Sampling step, e.g. 60s, 5m.")
@click.option("--gpu", "gpu_types", multiple=True, metavar="ID",
              help="A gpuTypeId to include (repeatable; default: every type in the catalogue).")
@click.option("--gpu-type", "old_gpu_types", multiple=True, hidden=True)  # the old spelling of --gpu
@click.option("--start", callback=_start, default=None, metavar="TIME",
              help="First timestamp, ISO 8601 (default 2026-01-01T00:00:00Z).")
@click.option("--market", type=click.Choice(["runpod", "vast"]), default="runpod", show_default=True,
              help="Which emulated market: RunPod's (clouds SECURE/COMMUNITY) or Vast's (tiers VERIFIED/UNVERIFIED).")
def trace_cmd(out: str, seed: int, days: float, step: object, gpu_types: tuple[str, ...],
              old_gpu_types: tuple[str, ...], start: datetime | None, market: str) -> None:
    """Write the emulator's market model, sampled on a grid, as a trace CSV (format: docs/traces.md).

    The prices are those `bidder sim serve --seed SEED` quotes at the same instants. With
    `--market vast`: one row per instant, Vast GPU name (--gpu 'RTX 4090'), GPU count and tier
    (VERIFIED/UNVERIFIED, in the `cloud` column), the cheapest floor and on-demand price per GPU among
    offers with reliability >= 0.95, and a `market` column (vast).

    OUT '-' writes the CSV to stdout (`bidder sim trace - | bidder import-trace -`). Instants are
    every --step from the start while inside --days (the start alone when --days is shorter).

    \b
    Example:
      bidder sim trace sim-seed1.csv --seed 1 --days 14 --step 5m
    """
    from bidder.sim import generate_quotes
    from bidder.sim.prices import DEFAULT_START
    from bidder.traces import write_trace

    if not out.strip():  # (read as ".": "cannot write .: Is a directory")
        raise click.BadParameter("is empty: give a file name, or - for stdout", param_hint="OUT")
    gpu_types = gpu_types + old_gpu_types
    if any(not name.strip() for name in gpu_types):  # (it listed every GPU type as the known ones)
        raise click.BadParameter("must not be empty: give a GPU type (RunPod's id, e.g. 'NVIDIA RTX A6000'; Vast's "
                                 "name, e.g. 'RTX 4090'), or leave --gpu out for every one", param_hint="--gpu")
    step_s = int(step.total_seconds())  # type: ignore[attr-defined]
    if step_s < 1:
        raise click.BadParameter("the step must be at least 1 second", param_hint="--step")
    if market == "vast":
        from bidder.sim.vast_trace import write_vast_trace
        from bidder.sim.vast_world import generate_vast_quotes
        generate, write = generate_vast_quotes, write_vast_trace
    else:
        generate, write = generate_quotes, write_trace  # type: ignore[assignment]
    first = start or DEFAULT_START
    if first > datetime.max.replace(tzinfo=UTC) - timedelta(days=days + 1):  # its times must fit in the year 9999
        raise click.BadParameter(f"{to_iso(first)} and {days:g} days run past the year 9999: give an earlier start",
                                 param_hint="--start")
    try:
        quotes = generate(seed, days, step_s, gpu_types or None, start=first)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu") from None
    if out == "-":  # stdout, as `import-trace -` reads stdin: the CSV alone there, the count on stderr
        count = write(quotes, sys.stdout)
        click.echo(f"Wrote {count} rows to stdout.", err=True)
        return
    count = write_file(str(out), lambda handle: write(quotes, handle))  # whole or not at all, as export -o
    click.echo(f"Wrote {count} rows to {out}.")
