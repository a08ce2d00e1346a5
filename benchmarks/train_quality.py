"""Training quality: LRI-Bernoulli and LRI-Gaussian with EGNN and DGCNN on the built-in data.

    python benchmarks/train_quality.py [--epochs-actstrack N] [--epochs-tau3mu N] [--seed 0]
                                       [--runs actstrack:lri_bernoulli:egnn ...]
                                       [--set train.ema_track_live=true ...]

Trains on ActsTrack-sim (2 T, 3000 events) and Tau3Mu-sim (20000 events) with the reference
shipped configs (``hepx/configs/``) (the reference schedule, or as much of it as fits about 15 minutes per
run on 2 CPU cores: ``_common.BENCH_EPOCHS``; a shortened run compresses its warm-up and r
schedule, see ``_common.shortened_config``; ``--epochs-*`` sets one count for every method of
a dataset) and prints, per
run, the test prediction ROC AUC, interpretation ROC AUC and precision@k at the selected
epoch, with the training wall time. Finished runs in ``--runs-dir`` are reused (the paper table
and the distribution-shift study read the same runs) if they were trained with the current
config's model and train settings; a run trained under other settings stops the script with
the differing keys named (``_common.check_run_config``).
Goal: prediction AUC >= 0.95 and LRI-Bernoulli interpretation ROC AUC >= 0.90 on both.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from _common import WORKDIR, bench_epochs, run_script, train_run, training_minutes

from hepx.atomic import atomic_file

DEFAULT_RUNS = [
    f"{d}:{m}:{b}"
    for d in ("actstrack", "tau3mu")
    for m in ("lri_bernoulli", "lri_gaussian")
    for b in ("egnn", "dgcnn")
]


def run_one(
    kind: str,
    method: str,
    backbone: str,
    epochs: int,
    seed: int,
    runs_dir: Path,
    overrides: Sequence[str] = (),
) -> dict:
    run = train_run(
        kind, method, backbone, epochs=epochs, seed=seed, runs_dir=runs_dir, overrides=overrides
    )
    result = json.loads((run / "test_metrics.json").read_text())
    # from the run's own per-epoch record, so that a run trained by another script (the paper
    # table) or resumed is timed correctly, not as the near-zero time of reusing it
    result["minutes"] = training_minutes(run)
    with atomic_file(run / "minutes.json") as tmp:  # never a half-written record
        tmp.write_text(json.dumps(result["minutes"]))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--epochs-actstrack", type=int, default=None, help="default: BENCH_EPOCHS")
    ap.add_argument("--epochs-tau3mu", type=int, default=None, help="default: BENCH_EPOCHS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="dataset:method:backbone")
    ap.add_argument("--runs-dir", type=Path, default=WORKDIR / "runs", help="shared run cache")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every run, e.g. train.ema_track_live=true (repeatable)",
    )
    args = ap.parse_args()
    rows = []
    for spec in args.runs:
        kind, method, backbone = spec.split(":")
        override = args.epochs_actstrack if kind == "actstrack" else args.epochs_tau3mu
        epochs = bench_epochs(kind, method, override)
        res = run_one(kind, method, backbone, epochs, args.seed, args.runs_dir, args.overrides)
        rows.append((kind, method, backbone, epochs, res))
        print(
            f"done {spec}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()})}",
            flush=True,
        )
    print()
    print(
        f"{'dataset':<10} {'method':<14} {'backbone':<7} {'epochs':>6} {'pred AUC':>8} {'interp AUC':>10}  precision@k{'':<14} {'minutes':>7}"
    )
    for kind, method, backbone, epochs, r in rows:
        # a run with train.ema_track_live also reports its live weights: the run without the
        # weight average, on the same trajectory (marked "live")
        for tag in ("", "live_") if "test_live_pred_auc" in r else ("",):
            ks = sorted(int(k.split("@")[1]) for k in r if k.startswith(f"test_{tag}prec@"))
            prec = " ".join(f"@{k}={r[f'test_{tag}prec@{k}']:.3f}" for k in ks)
            name = backbone + (" live" if tag else "")
            print(
                f"{kind:<10} {method:<14} {name:<7} {epochs:>6} {r[f'test_{tag}pred_auc']:>8.3f} "
                f"{r.get(f'test_{tag}interp_auc', float('nan')):>10.3f}  {prec:<25} "
                f"{r['minutes']:>7.1f}"
            )


if __name__ == "__main__":
    run_script(main)
