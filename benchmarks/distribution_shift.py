"""Distribution shift in the magnetic field: train on ActsTrack-sim at 2 T, test at 4, 6, 8 ... T.

    python benchmarks/distribution_shift.py [--out bench/shift] [--fields 4 6 8] [--smoke]

Simulates (``hepx simulate actstrack --bfield B``) and converts one dataset per field, trains a
plain run (explained by the post-hoc methods) and LRI-Bernoulli / LRI-Gaussian runs at 2 T
(shortened reference configs shared with ``train_quality.py`` / ``paper_table.py`` through
``--runs-dir``, or given with ``--runs``), then evaluates every run on the 2 T test split and
on each shifted dataset (``hepx evaluate --data``). Writes ``shift.csv`` / ``shift.md`` (prediction AUC, interpretation
ROC AUC and precision@k per method and field) and ``shift.png``.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from _common import WORKDIR, bench_epochs, run_script, simulated_dataset, train_run

from hepx.evaluation import evaluate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("bench/shift"))
    ap.add_argument("--fields", type=float, nargs="+", default=[4.0, 6.0, 8.0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--backbone", default="egnn")
    ap.add_argument("--methods", nargs="+", default=None, help="post-hoc methods (default all)")
    ap.add_argument("--runs", type=Path, nargs="+", default=None, help="reuse trained 2 T runs")
    ap.add_argument(
        "--epochs", type=int, default=None, help="2 T training epochs (default: BENCH_EPOCHS)"
    )
    ap.add_argument("--runs-dir", type=Path, default=WORKDIR / "runs", help="shared run cache")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    overrides: list[str] = []
    eval_opts: dict = {"robustness": False, "sanity": False}
    workdir, runs_dir = WORKDIR, args.runs_dir
    if args.smoke:  # tiny private data and runs, never mixed with the shared cache
        args.events, args.epochs = min(args.events, 120), 2
        workdir = runs_dir = out
        overrides = ["model.hidden_channels=8", "model.num_layers=2", "train.warmup=1"]
        eval_opts.update(bernmask_iterations=10, fit_epochs=1, ig_steps=8, max_samples=32)

    def dataset(b: float) -> Path:  # a different event sample from the 2 T training data
        return simulated_dataset(
            "actstrack", args.events, seed=int(100 + b), bfield=b, workdir=workdir
        )

    runs = args.runs
    if runs is None:
        base = simulated_dataset("actstrack", args.events, workdir=workdir)
        runs = [
            train_run(
                "actstrack",
                method,
                args.backbone,
                epochs=bench_epochs("actstrack", method, args.epochs),
                seed=args.seed,
                runs_dir=runs_dir,
                data=base,
                overrides=overrides,
            )
            for method in ("plain", "lri_bernoulli", "lri_gaussian")
        ]
    methods = None if args.methods is None else [*args.methods, "lri_bernoulli", "lri_gaussian"]
    rows = []
    for b in [2.0, *args.fields]:
        data = None if b == 2.0 else dataset(b)
        res = evaluate(
            runs,
            out / "reports" / f"{b:g}T",
            methods=methods,
            data=data,
            seed=args.seed,
            **eval_opts,
        )
        for r in res:
            ks = sorted(int(k[5:]) for k in r if k.startswith("prec@"))
            rows.append(
                {
                    "bfield": b,
                    "method": r["method"],
                    "pred_auc": r["pred_auc"],
                    "interp_auc": r["interp_auc"],
                    f"prec@{ks[0]}": r[f"prec@{ks[0]}"],
                }
            )
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "shift.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += [
        "| "
        + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys)
        + " |"
        for r in rows
    ]
    (out / "shift.md").write_text(
        "# Train at 2 T, test at other fields\n\n" + "\n".join(lines) + "\n"
    )
    _plot(rows, out / "shift.png")
    print("\n".join(lines))


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for m in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == m]
        style = "-" if m.startswith("lri") else "--"
        axes[1].plot(
            [r["bfield"] for r in sel], [r["interp_auc"] for r in sel], style, marker="o", label=m
        )
        if m in ("gradgeo", "lri_bernoulli", "lri_gaussian"):  # one curve per distinct model
            axes[0].plot(
                [r["bfield"] for r in sel],
                [r["pred_auc"] for r in sel],
                style,
                marker="o",
                label="plain" if m == "gradgeo" else m,
            )
    axes[0].set(xlabel="B field [T]", ylabel="prediction ROC AUC", title="prediction")
    axes[1].set(xlabel="B field [T]", ylabel="interpretation ROC AUC", title="interpretation")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    run_script(main)
