"""The same seeded chain under two versions of hepx, every output compared.

    python benchmarks/seeded_equivalence.py --base REV [--head REV] [--work DIR]

Checks that a change (a refactoring) leaves results as they were. Each version is checked out
as a git worktree (``--head`` default: this working tree) and runs, single-threaded, the same
chain through its command line: simulate Tau3Mu (800 events) and ActsTrack (200 events),
convert both, train four small runs covering the fit loop's parts (LRI-Bernoulli EGNN with
warm-up, weight average, live tracking and a cosine schedule; LRI-Gaussian DGCNN in the beam
frame on a direction graph; a plain DGCNN; LRI-Bernoulli EGNN at mask temperature 0.5), score
the ROOT files with two of them and evaluate four methods. Then it compares ``metrics.csv``
(every column but the wall time), ``test_metrics.json``, the scored ROOT trees and Parquet
files and the evaluation table (timings aside) and prints one line per output. Determinism
holds for one seed and one thread count on one machine, so both sides run with one thread on
this machine. Exit code 1 when anything differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {
    "a": """dataset: {path: DATA/tau3mu, kind: tau3mu}
model: {backbone: egnn, method: lri_bernoulli, hidden_channels: 16, num_layers: 2,
        graph: {kind: radius, r: 1.0}}
train: {epochs: 4, warmup: 1, batch_size: 64, seed: 7, ema_decay: 0.9, ema_track_live: true,
        lr_schedule: cosine, lr_decay_start: 2}
eval: {precision_k: [3, 7]}
""",
    "b": """dataset: {path: DATA/acts, kind: actstrack}
model: {backbone: dgcnn, method: lri_gaussian, hidden_channels: 16, num_layers: 2,
        pos_scale: 0.001, frame: beam, graph: {kind: knn, k: 5, space: direction}}
train: {epochs: 2, warmup: 1, batch_size: 32, seed: 3}
eval: {precision_k: [12, 24]}
""",
    "c": """dataset: {path: DATA/tau3mu, kind: tau3mu}
model: {backbone: dgcnn, method: plain, hidden_channels: 16, num_layers: 2, aggr: add,
        graph: {kind: radius, r: 1.0}}
train: {epochs: 2, batch_size: 64, seed: 1}
eval: {precision_k: [3]}
""",
    "d": """dataset: {path: DATA/acts, kind: actstrack}
model: {backbone: egnn, method: lri_bernoulli, hidden_channels: 16, num_layers: 2,
        pos_scale: 0.001, frame: beam, aggr: mean, bernoulli: {temperature: 0.5},
        graph: {kind: knn, k: 5, space: direction}}
train: {epochs: 3, warmup: 1, batch_size: 32, seed: 5, info_loss_coef: 1.0}
eval: {precision_k: [12]}
""",
}


def checkout(rev: str | None, work: Path) -> Path:
    """The source tree of ``rev`` (a git worktree), or this working tree for ``None``."""
    if rev is None:
        return REPO
    path = work / f"src-{rev.replace('/', '_')}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev],
            check=True,
            capture_output=True,
        )
    return path


def run_chain(src: Path, out: Path) -> None:
    """Simulate, convert, train, score and evaluate with the hepx in ``src``, into ``out``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["MPLBACKEND"] = "Agg"
    sim, data = out / "sim", out / "data"

    def hepx(*args: object) -> None:
        cmd = [sys.executable, "-m", "hepx.cli", "-q", *map(str, args)]
        subprocess.run(cmd, check=True, env=env, cwd=out)

    out.mkdir(parents=True)
    hepx("simulate", "tau3mu", "--events", 800, "--seed", 2, "--out", sim / "tau3mu")
    hepx("simulate", "actstrack", "--events", 200, "--seed", 2, "--out", sim / "acts")
    hepx("convert", "tau3mu", sim / "tau3mu" / "ntuple.root", "--out", data / "tau3mu")
    hepx("convert", "actstrack", sim / "acts", "--out", data / "acts")
    for name, text in CONFIGS.items():
        cfg = out / f"{name}.yaml"
        cfg.write_text(text.replace("DATA", str(data)))
        hepx("train", cfg, "--out", out / f"run_{name}")
    hepx("explain", out / "run_a", sim / "tau3mu" / "ntuple.root", "--out", out / "scored_a")
    hepx("explain", out / "run_b", sim / "acts", "--out", out / "scored_b")
    hepx(
        "evaluate", out / "run_c", out / "run_a", "--methods", "gradcam", "gradgeo", "ig",
        "lri_bernoulli", "--out", out / "eval", "--max-samples", 64, "--robustness-samples", 8,
        "--draws", 3, "--ig-steps", 8,
    )  # fmt: skip


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def _same_tree(a: uproot.TTree, b: uproot.TTree) -> bool:
    xa, xb = a.arrays(library="ak"), b.arrays(library="ak")
    if xa.fields != xb.fields or len(xa) != len(xb):
        return False
    for f in xa.fields:
        u = ak.to_numpy(ak.flatten(xa[f], axis=None))
        v = ak.to_numpy(ak.flatten(xb[f], axis=None))
        if not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
            return False
    return True


def compare(base: Path, head: Path) -> list[tuple[str, bool]]:
    """``(output, identical)`` for every output of the chain."""
    checks = []
    for name in CONFIGS:
        run_b, run_h = base / f"run_{name}", head / f"run_{name}"
        same = _csv_rows(run_b / "metrics.csv") == _csv_rows(run_h / "metrics.csv")
        checks.append((f"run_{name}/metrics.csv (wall time aside)", same))
        tb, th = (json.loads((r / "test_metrics.json").read_text()) for r in (run_b, run_h))
        checks.append((f"run_{name}/test_metrics.json", tb == th))
    for scored in ("scored_a", "scored_b"):
        mb = json.loads((base / scored / "manifest.json").read_text())
        for o in mb["outputs"]:
            pb, ph = (ak.from_parquet(d / scored / o["parquet"]) for d in (base, head))
            same = pb.fields == ph.fields and ak.to_list(pb) == ak.to_list(ph)
            checks.append((f"{scored}/{o['parquet']}", same))
            with (
                uproot.open(base / scored / o["root"]) as fb,
                uproot.open(head / scored / o["root"]) as fh,
            ):
                trees = sorted(k for k in fb.keys() if fb.classname_of(k) == "TTree")
                same = trees == sorted(k for k in fh.keys() if fh.classname_of(k) == "TTree")
                same = same and all(_same_tree(fb[t], fh[t]) for t in trees)
            checks.append((f"{scored}/{o['root']} (every tree)", same))
    timing = ("fit_s", "explain_ms_per_sample")
    rb, rh = (json.loads((d / "eval" / "results.json").read_text()) for d in (base, head))
    strip = [[{k: v for k, v in r.items() if k not in timing} for r in rows] for rows in (rb, rh)]
    checks.append(("eval/results.json (timings aside)", strip[0] == strip[1]))
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", required=True, help="git revision of the reference version")
    ap.add_argument("--head", default=None, help="git revision to compare (default: this tree)")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temp one)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="hepx-equivalence-"))
    sides = {}
    for label, rev in (("base", args.base), ("head", args.head)):
        src = checkout(rev, work)
        out = work / label
        print(f"{label}: hepx from {src} ({rev or 'working tree'}) -> {out}", flush=True)
        run_chain(src, out)
        sides[label] = out
    checks = compare(sides["base"], sides["head"])
    width = max(len(name) for name, _ in checks)
    for name, same in checks:
        print(f"{name:<{width}}  {'identical' if same else 'DIFFERS'}")
    ok = all(same for _, same in checks)
    print("all outputs identical" if ok else "outputs differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
