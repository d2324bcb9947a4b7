"""Regenerate (or check) the traces shipped in `data/traces/` from the emulator's market model.

    python3 analysis/make_traces.py            # rewrite data/traces/*.csv
    python3 analysis/make_traces.py --check    # exit 1 if a shipped file differs from a fresh build

Each trace samples `bidder.sim.generate_quotes(seed, days, step)` (the same prices an
`Emulator(seed=seed)` quotes at those instants) for a few GPU types, both clouds, GPU count 1,
and writes it with `bidder.traces.write_trace`, rows sorted by (ts, gpu_type, cloud) like
`bidder export`, so importing a shipped trace and exporting it gives the same bytes back.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bidder.sim import generate_quotes
from bidder.traces import write_trace

__all__ = ["TRACES", "TraceSpec", "build", "main"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class TraceSpec:
    name: str
    seed: int
    days: float
    step_s: int
    gpu_types: tuple[str, ...]
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)


#: Six GPU types whose markets (seed 1) span the model's regimes: calm (RTX A6000 both clouds,
#: RTX 3090 secure), medium (A100 PCIe, H100 SXM secure, RTX 4090 secure, RTX 3090 community) and
#: volatile (RTX 4090 and H100 SXM community, L40S both clouds).
TRACES: tuple[TraceSpec, ...] = (
    TraceSpec("sim-seed1-14d.csv", seed=1, days=14, step_s=300, gpu_types=(
        "NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090", "NVIDIA A100 80GB PCIe",
        "NVIDIA H100 80GB HBM3", "NVIDIA L40S")),
)


def build(spec: TraceSpec) -> str:
    """The trace's CSV text."""
    quotes = generate_quotes(spec.seed, spec.days, spec.step_s, list(spec.gpu_types), start=spec.start)
    quotes.sort(key=lambda q: (q.ts, q.gpu_type_id, q.cloud, q.gpu_count))
    buffer = io.StringIO()
    write_trace(quotes, buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "data" / "traces")
    parser.add_argument("--check", action="store_true", help="Compare with the files on disk; write nothing.")
    args = parser.parse_args(argv)
    status = 0
    for spec in TRACES:
        text = build(spec)
        path = args.out_dir / spec.name
        rows = text.count("\n") - 1
        if args.check:
            same = path.is_file() and path.read_text(encoding="utf-8") == text
            print(f"{path}: {'matches' if same else 'DIFFERS from' if path.is_file() else 'is MISSING, unlike'} "
                  f"a fresh build ({rows} rows)")
            status |= 0 if same else 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}: {rows} rows, {len(text.encode()) / 1e6:.1f} MB")
    return status


if __name__ == "__main__":
    sys.exit(main())
