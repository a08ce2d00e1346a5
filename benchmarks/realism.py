"""How real is the simulation: the fast generator beside Pythia 8, and both beside real data.

    OMP_NUM_THREADS=1 python benchmarks/realism.py --work DIR [--events N | KIND=N ...]
        [--seed 1] [--seeds 0 1 2] [--epochs N | KIND=N ...] [--datasets actstrack tau3mu]
        [--generators fast pythia8] [--pileup MU | KIND=MU ...] [--smoke]

Per data set and generator: simulate ``--events`` events (``hepx simulate KIND --generator G``;
the same events count, simulation seed, pileup and every other simulation setting at its
command-line default for both generators) and convert them with the default reader
(``hepx convert``); from the dataset arrays: points per sample, important (ground-truth)
points per positive sample and the positive : negative ratio, beside the paper's Table 1
(real data). Then per training seed: the shipped plain and LRI-Bernoulli EGNN configs (the
same configs and epochs for both generators; epochs: ``_common.BENCH_EPOCHS`` unless
``--epochs``), trained on each generator's data and evaluated on its test split
(:func:`hepx.evaluation.evaluate`): the plain EGNN's prediction ROC AUC, GradCAM's
interpretation ROC AUC on the plain run, and the LRI-Bernoulli run's interpretation and
prediction ROC AUC, beside the literature's real-data values (prediction: ERM; interpretation:
``paper_table.LITERATURE``, EGNN). With two or more seeds a cell is the mean and the 95 %
Student-t interval of the mean (``paper_table.t_interval``).

Everything is written under ``--work``: ``sim/`` and ``data/`` (per data set, generator, events,
seed and pileup), ``runs/``, ``reports/``, ``records.json`` (every finished step: a stopped run
resumes with the same command, finished steps are skipped), ``realism.md`` and
``realism.json``. The table is printed at the end.

The simulations are not tuned toward the real-data numbers: the table reports what they give.

``--smoke``: tiny event counts (both generators), 2 epochs, small models: a pipeline check whose
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from _common import EVENTS, bench_epochs, run_script, train_run, training_minutes
from paper_table import LITERATURE, LITERATURE_BACKBONE, t_interval

from hepx.atomic import atomic_file
from hepx.evaluation import evaluate

DATASETS = ("actstrack", "tau3mu")
GENERATORS = ("fast", "pythia8")
BACKBONE = "egnn"
#: The two runs per data set, generator and seed.
METHODS = ("plain", "lri_bernoulli")

#: The paper's Table 1 (real data): points per sample, important points per positive sample,
#: positive : negative (percent).
TABLE1 = {
    "actstrack": {"points": 109.1, "important": 22.8, "ratio": (39, 61)},
    "tau3mu": {"points": 16.9, "important": 5.5, "ratio": (24, 76)},
}
#: The literature's real-data prediction ROC AUC of the plain classifier (ERM), EGNN.
ERM_PRED_AUC = {"actstrack": 0.974, "tau3mu": 0.828}
#: Literature rows (``paper_table.LITERATURE``) of the interpretation metrics.
LITERATURE_METHODS = {"gradcam_interp_auc": "gradcam", "lri_interp_auc": "lri_bernoulli"}

#: ``--smoke``: events per data set (the same for both generators), epochs, model overrides.
SMOKE_EVENTS = {"actstrack": 100, "tau3mu": 300}
SMOKE_EPOCHS = 2
SMOKE_OVERRIDES = ("model.hidden_channels=8", "model.num_layers=2", "train.warmup=1")

#: The rows of the table: (key, label); a key of the data statistics or of the runs' metrics.
ROWS = (
    ("events", "events simulated"),
    ("samples", "samples after conversion"),
    ("points", "points per sample (mean, sd)"),
    ("important", "important points per positive sample (mean, sd)"),
    ("ratio", "positive : negative (%)"),
    ("plain_pred_auc", "plain EGNN prediction ROC AUC"),
    ("gradcam_interp_auc", "GradCAM interpretation ROC AUC (plain EGNN)"),
    ("lri_interp_auc", "LRI-Bernoulli EGNN interpretation ROC AUC"),
    ("lri_pred_auc", "LRI-Bernoulli EGNN prediction ROC AUC"),
    ("sim_minutes", "simulation minutes"),
)
#: The metrics taken per seed from the evaluation.
METRICS = ("plain_pred_auc", "gradcam_interp_auc", "lri_interp_auc", "lri_pred_auc")


# --- settings --------------------------------------------------------------------------------


def per_dataset(
    values: Sequence[str] | None, datasets: Sequence[str], default: Mapping, cast=float
) -> dict:
    """``{dataset: value}`` from ``--option V`` (every data set) or ``--option KIND=V ...``
    (those named; the others keep ``default``). Raises ``ValueError`` on a malformed or
    unknown entry."""
    out = {d: default.get(d) for d in datasets}
    for v in values or ():
        kind, sep, text = v.rpartition("=")
        if not sep and len(values) > 1:
            raise ValueError(f"{v!r}: give one value for every data set, or KIND=VALUE entries")
        if sep and kind not in DATASETS:
            raise ValueError(f"{v!r}: unknown data set {kind!r} (expected {', '.join(DATASETS)})")
        try:
            value = cast(text)
        except ValueError:
            raise ValueError(f"{v!r}: {text!r} is not a {cast.__name__}") from None
        for d in [kind] if sep else datasets:
            if d in out:
                out[d] = value
    return out


def cli_defaults(kind: str) -> dict:
    """The simulation settings ``hepx simulate KIND`` uses when not given: ``pileup``,
    ``pool_size``, ``signal_fraction`` (the same for both generators)."""
    from hepx.cli import build_parser

    args = build_parser().parse_args(["simulate", kind, "--events", "1", "--out", "."])
    return {k: getattr(args, k) for k in ("pileup", "pool_size", "signal_fraction")}


def data_tag(kind: str, generator: str, events: int, seed: int, pileup: float) -> str:
    return f"{kind}_{generator}_n{events}_s{seed}_pu{pileup:g}"


# --- data ------------------------------------------------------------------------------------


def simulate_and_convert(
    kind: str, generator: str, events: int, seed: int, sim_opts: Mapping, work: Path
) -> tuple[Path, float | None]:
    """Simulate (``hepx simulate``'s defaults but ``sim_opts``) and convert (default reader)
    into ``work/sim/<tag>`` and ``work/data/<tag>``, each skipped when already done; returns
    the dataset directory and the minutes the simulation took here (``None`` if reused)."""
    from hepx import sim
    from hepx.data import convert

    tag = data_tag(kind, generator, events, seed, sim_opts["pileup"])
    raw, data = work / "sim" / tag, work / "data" / tag
    if (data / "manifest.json").exists():
        return data, None
    files = ["hits.root", "particles.root"] if kind == "actstrack" else ["ntuple.root"]
    minutes = None
    if not all((raw / f).exists() for f in files):  # each file is written atomically
        simulate = sim.simulate_actstrack if kind == "actstrack" else sim.simulate_tau3mu
        t0 = time.perf_counter()
        simulate(raw, events=events, seed=seed, generator=generator, **sim_opts)
        minutes = (time.perf_counter() - t0) / 60
    convert(kind, [raw] if kind == "actstrack" else [raw / "ntuple.root"], data, overwrite=True)
    return data, minutes


def dataset_stats(ptr: np.ndarray, node_label: np.ndarray, y: np.ndarray) -> dict:
    """Per-sample statistics from the flat arrays of a dataset (sample ``i`` owns points
    ``ptr[i]:ptr[i + 1]``): samples, points per sample (mean, sd), important points
    (``node_label > 0``) per positive sample (mean, sd), positives and negatives."""
    counts = np.diff(np.asarray(ptr, dtype=np.int64))
    n = len(counts)
    owner = np.repeat(np.arange(n), counts)
    important = np.bincount(owner, weights=np.asarray(node_label) > 0, minlength=n)
    positive = np.asarray(y).reshape(n, -1)[:, 0] > 0.5
    imp = important[positive]
    return {
        "samples": n,
        "points_mean": float(counts.mean()) if n else math.nan,
        "points_sd": float(counts.std(ddof=1)) if n > 1 else math.nan,
        "important_mean": float(imp.mean()) if len(imp) else math.nan,
        "important_sd": float(imp.std(ddof=1)) if len(imp) > 1 else math.nan,
        "positive": int(positive.sum()),
        "negative": int(n - positive.sum()),
    }


def data_record(data: Path) -> dict:
    """:func:`dataset_stats` of the dataset directory ``data``."""
    from hepx.data import load_arrays

    arrays = load_arrays(data)
    return dataset_stats(arrays.ptr, arrays.point["node_label"], arrays.sample["y"])


# --- runs ------------------------------------------------------------------------------------


def metrics_of(rows: Sequence[Mapping]) -> dict:
    """The table's metrics from the evaluation rows of a plain and an LRI-Bernoulli run."""
    by = {r["method"]: r for r in rows}
    return {
        "plain_pred_auc": by["gradcam"]["pred_auc"],
        "gradcam_interp_auc": by["gradcam"]["interp_auc"],
        "lri_pred_auc": by["lri_bernoulli"]["pred_auc"],
        "lri_interp_auc": by["lri_bernoulli"]["interp_auc"],
        "gradcam_prec@k1": _first_prec(by["gradcam"]),
        "lri_prec@k1": _first_prec(by["lri_bernoulli"]),
    }


def _first_prec(row: Mapping) -> float:
    ks = sorted(int(k[5:]) for k in row if k.startswith("prec@"))
    return row[f"prec@{ks[0]}"] if ks else math.nan


# --- records ---------------------------------------------------------------------------------


class Records:
    """``WORK/records.json``: the finished steps, ``{"data": {tag: ...}, "eval": {key: ...}}``,
    rewritten atomically after each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc = json.loads(path.read_text()) if path.exists() else {}
        self.doc.setdefault("data", {})
        self.doc.setdefault("eval", {})

    def get(self, section: str, key: str) -> dict | None:
        return self.doc[section].get(key)

    def put(self, section: str, key: str, value: dict) -> None:
        self.doc[section][key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path) as tmp:
            tmp.write_text(json.dumps(_json_safe(self.doc), indent=1) + "\n")


def eval_key(tag: str, epochs: Mapping[str, int], seed: int, overrides: Sequence[str]) -> str:
    """The record key of one seed's evaluation: data, epochs per method, seed, overrides."""
    runs = ",".join(f"{m}:e{epochs[m]}" for m in METHODS)
    return f"{tag}|{runs}|s{seed}" + (f"|{';'.join(overrides)}" if overrides else "")


def report_name(epochs: Mapping[str, int], seed: int, settings: Mapping) -> str:
    """The evaluation report's directory name under ``reports/<tag>``."""
    runs = "_".join(f"{m}-e{epochs[m]}" for m in METHODS)
    return f"s{seed}_{runs}" + ("_smoke" if settings["overrides"] else "")


# --- the table -------------------------------------------------------------------------------


def reference(kind: str) -> dict:
    """The real-data values of ``kind`` per table row (``None``: none): the paper's Table 1,
    the literature's ERM prediction AUC and EGNN interpretation ROC AUC (as fractions)."""
    assert LITERATURE_BACKBONE == BACKBONE
    t1 = TABLE1[kind]
    lit = {k: LITERATURE[kind][m][0] / 100 for k, m in LITERATURE_METHODS.items()}
    return {
        "points": t1["points"],
        "important": t1["important"],
        "ratio": t1["ratio"],
        "plain_pred_auc": ERM_PRED_AUC[kind],
        **lit,
    }


def _num(x, digits: int) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def seeds_text(c: Mapping) -> str:
    """A :func:`t_interval` cell: ``0.812 [0.790, 0.834] (3 seeds)``, ``0.812 (1 seed)`` or
    ``pending`` without seeds."""
    if c["n"] == 0:
        return "pending"
    if c["n"] == 1:
        return f"{c['mean']:.3f} (1 seed)"
    return f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] ({c['n']} seeds)"


def ratio_text(pos: int, neg: int) -> str:
    """``20.5:79.5 (59:229)``: percent and counts."""
    n = pos + neg
    if n == 0:
        return "n/a"
    return f"{100 * pos / n:.1f}:{100 * neg / n:.1f} ({pos}:{neg})"


def cell_text(key: str, entry: Mapping | None) -> str:
    """The table cell of row ``key`` for one data set and generator (``entry``:
    ``{"data": stats or None, "metrics": {metric: t_interval}}``)."""
    if entry is None:
        return "pending"
    stats = entry.get("data")
    if key in METRICS:
        return seeds_text(entry["metrics"][key])
    if stats is None:
        return "pending"
    if key == "points":
        return f"{_num(stats['points_mean'], 2)} (sd {_num(stats['points_sd'], 1)})"
    if key == "important":
        return f"{_num(stats['important_mean'], 2)} (sd {_num(stats['important_sd'], 1)})"
    if key == "ratio":
        return ratio_text(stats["positive"], stats["negative"])
    if key == "sim_minutes":
        return _num(stats.get("sim_minutes"), 2)
    return str(stats[key])


def reference_text(key: str, ref: Mapping) -> str:
    value = ref.get(key)
    if value is None:
        return "—"
    if key == "ratio":
        return f"{value[0]}:{value[1]}"
    return f"{value:.4g}" if key in METRICS else f"{value:g}"


TITLES = {"actstrack": "ActsTrack", "tau3mu": "Tau3Mu"}


def table_lines(results: Mapping, generators: Sequence[str]) -> list[str]:
    """One Markdown table: per data set (``results``: ``{dataset: {generator: entry}}``) and
    row, a column per generator and the real-data reference."""
    cols = ["data set", "quantity", *generators, "paper / literature (real data)"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for kind, by_gen in results.items():
        ref = reference(kind)
        for key, label in ROWS:
            cells = [cell_text(key, by_gen.get(g)) for g in generators]
            row = [TITLES.get(kind, kind), label, *cells, reference_text(key, ref)]
            lines.append("| " + " | ".join(row) + " |")
    return lines


NOTES = """\
Simulation: `hepx simulate` with `--events`, `--seed` and `--pileup` as below and every other
setting at its command-line default, the same for both generators; conversion with the default
reader. Points: the converted samples' points; important points: ground-truth points
(`node_label`) of the positive samples. Runs: the shipped `plain_egnn` / `lri_bernoulli_egnn`
configs, shortened to the epochs below (`_common.shortened_config`), trained and tested on each
generator's own data (its test split). GradCAM explains the plain run. A metric with two or more
seeds is the mean and the 95 % Student-t interval of the mean over seeds.

Real-data column: points, important points and the class ratio from the paper's Table 1;
prediction ROC AUC of the plain classifier (ERM) from the literature; interpretation ROC AUC of
GradCAM and LRI-Bernoulli with EGNN as the GMT paper's Table 3 quotes them from the LRI paper
(`paper_table.LITERATURE`). Those are real ActsTrack / Tau3Mu data, not these simulations.
"""


def settings_text(settings: Mapping) -> list[str]:
    lines = []
    for kind, s in settings["datasets"].items():
        ep = ", ".join(f"{m} {e}" for m, e in s["epochs"].items())
        lines.append(
            f"- {TITLES.get(kind, kind)}: {s['events']} events per generator, simulation seed "
            f"{settings['seed']}, pileup {s['pileup']:g}, Pythia pool {s['pool_size']}, "
            f"signal fraction {s['signal_fraction']:g}; epochs: {ep}"
        )
    lines.append(f"- training seeds: {' '.join(map(str, settings['seeds']))}")
    if settings["overrides"]:
        lines.append(f"- overrides: {' '.join(settings['overrides'])}")
    return lines


def markdown(results: Mapping, settings: Mapping, command: str, smoke: bool) -> str:
    lines = ["**--smoke run: tiny data and models, 2 epochs; the numbers mean nothing.**", ""]
    lines = lines if smoke else []
    lines += ["# How real is the simulation: fast generator, Pythia 8, real data", ""]
    lines += [NOTES, *settings_text(settings), ""]
    lines += ["```bash", command, "```", ""]
    lines += table_lines(results, settings["generators"])
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# --- main ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work", type=Path, required=True, help="everything is written here")
    ap.add_argument(
        "--events",
        nargs="+",
        default=None,
        metavar="N|KIND=N",
        help=f"events per generator (default {' '.join(f'{k}={EVENTS[k]}' for k in DATASETS)})",
    )
    ap.add_argument("--seed", type=int, default=1, help="simulation seed (both generators)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument(
        "--epochs",
        nargs="+",
        default=None,
        metavar="N|KIND=N",
        help="training epochs of both runs (default: _common.BENCH_EPOCHS)",
    )
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--generators", nargs="+", choices=GENERATORS, default=list(GENERATORS))
    ap.add_argument(
        "--pileup",
        nargs="+",
        default=None,
        metavar="MU|KIND=MU",
        help="pileup of both generators (default: hepx simulate's, actstrack 5, tau3mu 200)",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny data and runs (pipeline check)")
    ap.add_argument("--device", default="cpu")
    return ap


def _settings(args, ap) -> dict:
    datasets = list(dict.fromkeys(args.datasets))
    events_default = SMOKE_EVENTS if args.smoke else EVENTS
    try:
        events = per_dataset(args.events, datasets, events_default, int)
        epochs = per_dataset(args.epochs, datasets, {}, int)
        pileup = per_dataset(args.pileup, datasets, {}, float)
    except ValueError as err:
        ap.error(str(err))
    per: dict[str, dict] = {}
    for kind in datasets:
        sim = cli_defaults(kind)
        if pileup[kind] is not None:
            sim["pileup"] = pileup[kind]
        override = (
            epochs[kind] if epochs[kind] is not None else (SMOKE_EPOCHS if args.smoke else None)
        )
        ep = {m: bench_epochs(kind, m, override) for m in METHODS}
        per[kind] = {"events": events[kind], **sim, "epochs": ep}
    return {
        "datasets": per,
        "generators": list(dict.fromkeys(args.generators)),
        "seed": args.seed,
        "seeds": list(dict.fromkeys(args.seeds)),
        "overrides": list(SMOKE_OVERRIDES) if args.smoke else [],
        "backbone": BACKBONE,
        "smoke": args.smoke,
    }


def collect(records: Records, settings: Mapping) -> dict:
    """``{dataset: {generator: {"data": stats, "metrics": {metric: t_interval},
    "seeds": {seed: metrics}}}}`` of the current settings from ``records``."""
    out: dict[str, dict] = {}
    for kind, s in settings["datasets"].items():
        for gen in settings["generators"]:
            tag = data_tag(kind, gen, s["events"], settings["seed"], s["pileup"])
            per_seed = {}
            for seed in settings["seeds"]:
                rec = records.get("eval", eval_key(tag, s["epochs"], seed, settings["overrides"]))
                if rec is not None:
                    per_seed[seed] = rec
            metrics = {  # a NaN metric (e.g. no positive test sample) is stored as null
                m: t_interval([_nan(r.get(m)) for r in per_seed.values()]) for m in METRICS
            }
            entry = {"data": records.get("data", tag), "metrics": metrics, "seeds": per_seed}
            out.setdefault(kind, {})[gen] = entry
    return out


def _nan(x) -> float:
    return math.nan if x is None else float(x)


def write_outputs(work: Path, results: Mapping, settings: Mapping, command: str) -> str:
    """Write ``realism.md`` and ``realism.json``; returns the Markdown."""
    text = markdown(results, settings, command, settings["smoke"])
    doc = {
        "command": command,
        "settings": settings,
        "interval": "95 % Student-t interval of the mean over seeds (sd with ddof 1)",
        "reference": {
            "values": {kind: reference(kind) for kind in results},
            "table1": "the paper's Table 1, real data",
            "pred_auc": "plain classifier (ERM), literature, real data",
            "interp_auc": "GMT paper Table 3 quoting the LRI paper, EGNN, real data",
        },
        "results": results,
    }
    work.mkdir(parents=True, exist_ok=True)
    with atomic_file(work / "realism.json") as tmp:
        tmp.write_text(json.dumps(_json_safe(doc), indent=1) + "\n")
    with atomic_file(work / "realism.md") as tmp:
        tmp.write_text(text)
    return text


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _parser()
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("realism")
    settings = _settings(args, ap)
    work = args.work
    records = Records(work / "records.json")
    command = ("OMP_NUM_THREADS=1 python benchmarks/realism.py " + shlex.join(argv)).strip()

    data: dict[tuple[str, str], tuple[str, Path]] = {}
    for kind, s in settings["datasets"].items():
        sim_opts = {k: s[k] for k in ("pileup", "pool_size", "signal_fraction")}
        for gen in settings["generators"]:
            tag = data_tag(kind, gen, s["events"], settings["seed"], s["pileup"])
            path, minutes = simulate_and_convert(
                kind, gen, s["events"], settings["seed"], sim_opts, work
            )
            data[kind, gen] = tag, path
            if records.get("data", tag) is None:
                records.put(
                    "data",
                    tag,
                    {"events": s["events"], **data_record(path), "sim_minutes": minutes},
                )
                log.info("%s: %s", tag, records.get("data", tag))
    write_outputs(work, collect(records, settings), settings, command)

    for seed in settings["seeds"]:
        for kind, s in settings["datasets"].items():
            for gen in settings["generators"]:
                tag, path = data[kind, gen]
                key = eval_key(tag, s["epochs"], seed, settings["overrides"])
                if records.get("eval", key) is not None:
                    continue
                runs = [
                    train_run(
                        kind,
                        m,
                        BACKBONE,
                        epochs=s["epochs"][m],
                        seed=seed,
                        runs_dir=work / "runs" / tag,
                        data=path,
                        overrides=settings["overrides"],
                        device=args.device,
                    )
                    for m in METHODS
                ]
                report = work / "reports" / tag / report_name(s["epochs"], seed, settings)
                rows = evaluate(
                    runs,
                    report,
                    methods=["gradcam", "lri_bernoulli"],
                    device=args.device,
                    progress=False,
                    seed=seed,
                    robustness=False,
                    sanity=False,
                    overwrite=True,
                )
                rec = metrics_of(rows) | {
                    "runs": [str(r) for r in runs],
                    "train_minutes": {
                        m: training_minutes(r) for m, r in zip(METHODS, runs, strict=True)
                    },
                }
                records.put("eval", key, rec)
                write_outputs(work, collect(records, settings), settings, command)
    print(write_outputs(work, collect(records, settings), settings, command))


if __name__ == "__main__":
    run_script(main)
