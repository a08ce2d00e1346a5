"""Compact records of the benchmark runs that back the published tables.

    python benchmarks/records.py add RUN_DIR... [--group runs] [--note TEXT]
    python benchmarks/records.py show [--group runs]

A run directory holds checkpoints and every epoch's metrics; what a results table needs is far
less. ``add`` keeps, per run, its settings (the config's dataset kind and split, model, train
and eval sections), the test metrics of the selected epoch, the training minutes and the
per-epoch validation curves, in one JSON file per group under ``benchmarks/results/``
(``runs.json``: the current configs' runs; ``superseded.json``, ``experiments.json``: runs that
decided something and were replaced or not shipped). The models and data are not kept: the
simulation and the training are seeded, and ``benchmarks/train_quality.py`` re-trains a run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hepx.run import RunLayout

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("runs", "superseded", "experiments")
#: Per-epoch columns kept (those the results and decisions pages quote).
CURVES = ("val_pred_auc", "val_interp_auc", "val_live_interp_auc", "val_loss")


def _num(text: str) -> float | None:
    if text in ("", None):
        return None
    value = float(text)
    return None if math.isnan(value) else value


def summarise(run: Path, *, note: str = "") -> dict[str, Any]:
    """The record of one finished run directory."""
    layout = RunLayout(run)
    config = yaml.safe_load(layout.config.read_text())
    config["dataset"] = {k: v for k, v in config["dataset"].items() if k != "path"}
    test = json.loads(layout.test_metrics.read_text())
    with open(layout.metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    curves = {c: [_num(r.get(c, "")) for r in rows] for c in CURVES if c in rows[0]}
    minutes = sum(float(r["seconds"]) for r in rows) / 60
    record = {
        "name": run.name,
        "epochs": len(rows),
        "minutes": round(minutes, 2),
        "config": config,
        "test": test,
        "validation": curves,
    }
    if note:
        record["note"] = note
    return record


def load(group: str = "runs") -> dict[str, dict[str, Any]]:
    """Records of a group by name (empty if the group has none yet)."""
    path = RESULTS / f"{group}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save(group: str, records: Mapping[str, Any]) -> Path:
    path = RESULTS / f"{group}.json"
    path.write_text(json.dumps(dict(sorted(records.items())), indent=1) + "\n")
    return path


def add(runs: Iterable[Path], group: str = "runs", *, note: str = "", key: str | None = None):
    """Add (or replace) the records of finished runs in ``group``."""
    records = load(group)
    for run in runs:
        rec = summarise(run, note=note)
        records[key or rec["name"]] = rec
    return save(group, records)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="record finished run directories")
    a.add_argument("runs", nargs="+", type=Path)
    a.add_argument("--group", choices=GROUPS, default="runs")
    a.add_argument("--note", default="", help="why the run is recorded (superseded, experiment)")
    s = sub.add_parser("show", help="one line per recorded run")
    s.add_argument("--group", choices=GROUPS, default="runs")
    args = ap.parse_args(argv)
    if args.cmd == "add":
        print(add(args.runs, args.group, note=args.note))
        return
    for name, rec in load(args.group).items():
        t = rec["test"]
        interp = t.get("test_interp_auc")
        shown = "-" if interp is None else f"{interp:.3f}"
        print(
            f"{name:<45} pred AUC {t['test_pred_auc']:.3f}  interp AUC {shown}  {rec['minutes']} min"
        )


if __name__ == "__main__":
    main()
