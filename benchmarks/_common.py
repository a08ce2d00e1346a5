"""Shared helpers of the benchmark scripts: cached simulated datasets."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hepx import sim
from hepx.data import convert

WORKDIR = Path(tempfile.gettempdir()) / "hepx-bench"


def simulated_dataset(
    kind: str, events: int, *, seed: int = 1, bfield: float = 2.0, workdir: Path = WORKDIR
) -> Path:
    """Simulate and convert once; later calls reuse the cached dataset directory."""
    tag = f"{kind}_{events}_s{seed}" + (f"_{bfield:g}T" if kind == "actstrack" else "")
    data = workdir / "data" / tag
    if (data / "manifest.json").exists():
        return data
    raw = workdir / "sim" / tag
    if kind == "actstrack":
        sim.simulate_actstrack(raw, events=events, bfield=bfield, seed=seed)
        convert("actstrack", [raw], data)
    else:
        sim.simulate_tau3mu(raw, events=events, seed=seed)
        convert("tau3mu", [raw / "ntuple.root"], data)
    return data
