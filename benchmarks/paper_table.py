"""Paper-style table: every method x {EGNN, DGCNN} x {ActsTrack-sim, Tau3Mu-sim, SynMol}, seeds.

    python benchmarks/paper_table.py [--out bench/paper] [--seeds 0 1 2] [--datasets ...]
        [--backbones egnn dgcnn] [--epochs-actstrack N] [--epochs-tau3mu N] [--epochs-synmol N]
        [--samples-synmol N] [--min-seeds 3] [--smoke]

Steps: simulate + convert both datasets (built-in simulations, the quality benchmark's
cached ActsTrack-sim 3000 events / Tau3Mu-sim 20000 events; with ``--datasets synmol`` also
SynMol, 8,663 molecules as in the paper, ``--samples-synmol``), train plain / LRI-Bernoulli /
LRI-Gaussian runs per backbone and seed, and a second LRI-Bernoulli run with the mask-weighted
global pool (``model.bernoulli.mask_pool=true``, run ``<kind>_lri_bernoulli_maskpool_...``;
the reference pool is unweighted) (reference configs with the epochs of
``_common.BENCH_EPOCHS`` unless ``--epochs-*`` is given, shared with ``train_quality.py``
through ``--runs-dir``), run :func:`hepx.evaluation.evaluate` on each seed's runs
(post-hoc methods on the plain run; the mask-pool run into its own report
``<dataset>_<backbone>_s<seed>-maskpool``, whose rows are relabelled
``lri_bernoulli_maskpool``), and aggregate the mean and the 95 % Student-t interval of the
mean over seeds into ``paper_table.md`` / ``paper_table.csv`` / ``paper_table.json`` (every
finished report under ``--out`` enters the table: run one process per backbone to use several
cores). A cell with fewer than ``--min-seeds`` seeds reads ``pending (n of N seeds)``. The
EGNN rows carry the real-data numbers the literature reports (GMT paper, Table 3, quoting the
LRI paper); SynMol has none. A run whose method has no shipped config for a dataset and
backbone (GMT: EGNN only) is skipped, the reason printed once.

The claims under test, per dataset and backbone, on paired per-seed differences: LRI-Bernoulli
above every post-hoc method, GMT-lin and GMT-sam each above LRI-Bernoulli (pending without
runs of that variant, not tested without its config), and the reference LRI-Bernoulli against
its mask-weighted-pool variant.

``--smoke`` uses the smallest settings (tiny data, 2 epochs, small models, few iterations,
one seed per cell) to check that the pipeline runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import (
    BENCH_EPOCHS,
    CONFIGS,
    EVENTS,
    WORKDIR,
    bench_epochs,
    run_script,
    simulated_dataset,
    train_run,
)
from scipy import stats

from hepx.atomic import atomic_file
from hepx.config import load_yaml
from hepx.config.evaluate import PATH_BASELINES as BASELINES
from hepx.errors import ConfigError
from hepx.evaluation import evaluate
from hepx.explain.registry import POST_HOC, SELF_INTERPRETABLE
from hepx.run import RunLayout

METRICS = [
    "pred_auc",
    "interp_auc",
    "interp_auc_per_sample",
    "prec@k1",
    "prec@k2",
    "prec@k3",
    "fid_plus",
    "fid_minus",
    "sanity_random_spearman",
    "sanity_cascade_head_spearman",
    "sanity_perturb_spearman",
]
#: The metrics of the Markdown table, in its column order.
TABLE_METRICS = ["interp_auc", "prec@k1", "prec@k2", "prec@k3", "pred_auc"]
#: The sanity checks of the checks section, with their column titles.
CHECK_METRICS = {
    "sanity_cascade_head_spearman": "head randomised",
    "sanity_random_spearman": "all weights randomised",
    "sanity_perturb_spearman": "weights perturbed",
}
#: The metrics of the claims.
CLAIM_METRICS = ("interp_auc", "prec@k1")

#: The data sets of the table (:func:`_common.simulated_dataset`).
DATASETS = ("actstrack", "tau3mu", "synmol")
#: Samples of each data set with ``--smoke`` (SynMol: molecules).
SMOKE_EVENTS = {"actstrack": 120, "tau3mu": 600, "synmol": 300}
#: The runs trained per dataset, backbone and seed (those with a shipped config:
#: :func:`available_jobs`).
RUN_METHODS = ("plain", "lri_bernoulli", "lri_gaussian", "pointmask")
#: GMT's runs (Chen et al. 2024), trained with the backbone its shipped configs exist for.
GMT_METHODS = ("gmt_lin", "gmt_sam")
GMT_BACKBONE = "egnn"
#: LRI-Bernoulli with the global pool weighted by the mask: its run label and table method.
MASKPOOL = "lri_bernoulli_maskpool"
MASKPOOL_OVERRIDE = "model.bernoulli.mask_pool=true"

#: Real-data numbers of the literature, EGNN only: (interpretation ROC AUC, precision), in
#: percent, as the GMT paper's Table 3 quotes them from the LRI paper. The GMT paper labels
#: every precision Prec@12; the LRI reference code logs the precision at its first k
#: (``topk[0]``), which is 12 for ActsTrack but 3 for Tau3Mu.
LITERATURE = {
    "actstrack": {
        "gradgeo": (69.31, 33.54),
        "bernmask": (54.23, 20.46),
        "bernmask_p": (22.87, 11.29),
        "pointmask": (49.20, 20.54),
        "gradcam": (75.19, 75.94),
        "lri_bernoulli": (74.38, 81.42),
        "gmt_lin": (77.45, 81.81),
    },
    "tau3mu": {
        "gradgeo": (78.04, 64.18),
        "bernmask": (71.58, 60.51),
        "bernmask_p": (70.72, 55.50),
        "pointmask": (55.93, 39.65),
        "gradcam": (76.18, 62.05),
        "lri_bernoulli": (78.23, 65.64),
        "gmt_lin": (79.17, 68.94),
    },
}
LITERATURE_BACKBONE = "egnn"
#: The k of the literature's precision column (the reference code's first k).
LITERATURE_K = {"actstrack": 12, "tau3mu": 3}


# --- statistics ------------------------------------------------------------------------------


def t_interval(values) -> dict:
    """Mean and 95 % Student-t interval of the mean of the finite ``values``:
    ``mean ± t_{0.975, n-1} * sd / sqrt(n)`` with the sample standard deviation (ddof 1).
    ``lo`` / ``hi`` are NaN below two values, ``mean`` too without any."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def cell(values, min_seeds: int) -> dict:
    """:func:`t_interval` of one table cell, ``pending`` (mean and interval left out) with
    fewer than ``min_seeds`` seeds: a cell is never filled from fewer."""
    c = {**t_interval(values), "pending": False}
    if c["n"] < min_seeds:
        c.update(mean=math.nan, lo=math.nan, hi=math.nan, pending=True)
    return c


def cell_text(c: dict, min_seeds: int) -> str:
    """``0.800 [0.552, 1.048]``, ``pending (1 of 3 seeds)`` or, from one seed (``--smoke``),
    ``0.800 (1 seed)``."""
    if c["pending"]:
        return f"pending ({c['n']} of {min_seeds} seeds)"
    if not math.isfinite(c["lo"]):
        return f"{c['mean']:.3f} ({c['n']} seed)"
    return f"{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"


def is_post_hoc(method: str) -> bool:
    """Every method but LRI's and GMT's (``lri*``, ``gmt*``) is a baseline of the claims: the
    post-hoc methods and the LRI paper's jointly trained PointMask (``pointmask``)."""
    return not method.startswith(("lri", "gmt"))


def run_config(ds: str, kind: str, bb: str) -> Path:
    """The shipped config a run of ``kind`` (a run method or :data:`MASKPOOL`) of ``ds`` and
    ``bb`` is trained from: ``<ds>/<method>_<bb>.yaml``."""
    method = "lri_bernoulli" if kind == MASKPOOL else kind
    return CONFIGS / ds / f"{method}_{bb}.yaml"


def has_config(ds: str, kind: str, bb: str) -> bool:
    """Whether a run of ``kind`` can be trained for ``ds`` and ``bb`` (:func:`run_config`)."""
    return run_config(ds, kind, bb).exists()


def available_jobs(jobs: list[tuple], ds: str, bb: str) -> tuple[list[tuple], list[str]]:
    """``jobs`` (:func:`_report_jobs`) without the runs that have no shipped config for ``ds``
    and ``bb`` (GMT has EGNN configs only), and the reasons, one per run left
    out. A job keeps its explicitly requested methods but those that are the skipped runs' own
    scores; a job left without runs, or without methods, is dropped."""
    kept, reasons = [], []
    for name, kinds, methods in jobs:
        missing = [k for k in kinds if not has_config(ds, k, bb)]
        for k in missing:
            path = run_config(ds, k, bb).relative_to(CONFIGS)
            reason = f"{ds} / {bb}: no {k} run, no shipped config {path.as_posix()}"
            if reason not in reasons:
                reasons.append(reason)
        runs = tuple(k for k in kinds if k not in missing)
        if methods is not None:
            methods = [m for m in methods if m not in SELF_INTERPRETABLE or has_config(ds, m, bb)]
        if runs and methods != []:
            kept.append((name, runs, methods))
    return kept, reasons


def _by_seed(rows) -> dict[tuple, dict[int, dict]]:
    """``{(dataset, backbone, method): {seed: row}}``."""
    index: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        index.setdefault((r["dataset"], r["backbone"], r["method"]), {})[r["seed"]] = r
    return index


def paired(index, ds: str, bb: str, a: str, b: str, metric: str) -> dict:
    """:func:`t_interval` of the per-seed differences ``a - b`` of ``metric`` over the seeds
    where both methods have a finite value, with ``method`` = ``b``."""
    ra, rb = index.get((ds, bb, a), {}), index.get((ds, bb, b), {})
    diffs = [
        float(ra[s].get(metric, math.nan)) - float(rb[s].get(metric, math.nan))
        for s in sorted(set(ra) & set(rb))
    ]
    return {"method": b, **t_interval(diffs)}


def _withheld(c: dict, min_seeds: int) -> dict:
    """A comparison with its mean and interval left out below ``min_seeds`` paired seeds
    (``pending``), as a cell is."""
    if c["n"] >= min_seeds:
        return {**c, "pending": False}
    return {**c, "mean": math.nan, "lo": math.nan, "hi": math.nan, "pending": True}


def above_verdict(comparisons: list[dict], min_seeds: int) -> tuple[str, list[str]]:
    """Verdict of "the first method is above each compared one" and the methods it names:
    ``does not hold`` if some complete interval lies below 0, else ``pending`` if some
    comparison has fewer than ``min_seeds`` paired seeds (naming, in the verdict, the complete
    ones whose interval already contains 0: with them the claim cannot hold, whatever the
    pending ones give), else ``holds`` if every lower bound is above 0, else ``not shown``
    (the intervals containing 0, or none from one seed)."""
    done = [c for c in comparisons if c["n"] >= min_seeds]
    below = [c["method"] for c in done if c["hi"] < 0]
    if below:
        return "does not hold", below
    short = [c for c in comparisons if c["n"] < min_seeds]
    if short:
        n = min(c["n"] for c in short)
        verdict = f"pending ({n} of {min_seeds} seeds)"
        unsure = [c["method"] for c in done if not c["lo"] > 0]
        if unsure:
            verdict = (
                f"pending ({n} of {min_seeds} seeds; interval contains 0: {', '.join(unsure)})"
            )
        return verdict, [c["method"] for c in short]
    unsure = [c["method"] for c in comparisons if not c["lo"] > 0]
    return ("not shown", unsure) if unsure else ("holds", [])


def difference_verdict(c: dict, min_seeds: int) -> str:
    """Verdict of "the two differ" for one paired comparison: ``holds`` (with the higher
    side) when its interval excludes 0, else ``not shown``; ``pending`` below
    ``min_seeds`` paired seeds."""
    if c["n"] < min_seeds:
        return f"pending ({c['n']} of {min_seeds} seeds)"
    if c["lo"] > 0:
        return "holds (reference higher)"
    if c["hi"] < 0:
        return "holds (mask-weighted higher)"
    return "not shown"


CLAIM_POST_HOC = "LRI-Bernoulli above every post-hoc method"
#: The GMT claims, one per variant (the GMT paper reports both above LRI-Bernoulli).
CLAIM_GMT = {"gmt_lin": "GMT-lin above LRI-Bernoulli", "gmt_sam": "GMT-sam above LRI-Bernoulli"}
CLAIM_MASKPOOL = "LRI-Bernoulli (reference) vs mask-weighted pool"


def claims(index, ds: str, bb: str, min_seeds: int) -> list[dict]:
    """The claim records of one dataset and backbone (``index``: :func:`_by_seed`): per claim
    metric, LRI-Bernoulli above every post-hoc method, GMT-lin and GMT-sam (each) above
    LRI-Bernoulli and the reference LRI-Bernoulli against the mask-weighted pool, each with its
    paired comparisons (``difference``: what is subtracted from what)."""
    methods = {m for (d, b, m) in index if (d, b) == (ds, bb)}
    # every expected baseline, also those without a record yet (pending, never left out)
    post = sorted(m for m in _methods(index, ds, bb) if is_post_hoc(m))
    records = []
    for metric in CLAIM_METRICS:
        base = {"dataset": ds, "backbone": bb, "metric": metric}
        comps = [
            _withheld(paired(index, ds, bb, "lri_bernoulli", m, metric), min_seeds) for m in post
        ]
        verdict, named = "pending (no post-hoc runs)", []
        if comps:
            verdict, named = above_verdict(comps, min_seeds)
        records.append(
            {**base, "claim": CLAIM_POST_HOC, "difference": "lri_bernoulli - method"}
            | {"verdict": verdict, "named": named, "comparisons": comps}
        )
        records += [
            {**base, **_gmt_claim(index, ds, bb, gmt, metric, min_seeds, methods)}
            for gmt in CLAIM_GMT
        ]
        comps = [_withheld(paired(index, ds, bb, "lri_bernoulli", MASKPOOL, metric), min_seeds)]
        records.append(
            {**base, "claim": CLAIM_MASKPOOL, "difference": "lri_bernoulli - method"}
            | {
                "verdict": difference_verdict(comps[0], min_seeds),
                "named": [],
                "comparisons": comps,
            }
        )
    return records


def _gmt_claim(
    index, ds: str, bb: str, gmt: str, metric: str, min_seeds: int, methods: set[str]
) -> dict:
    """The claim "``gmt`` above LRI-Bernoulli" of one dataset, backbone and metric: pending
    without runs of ``gmt``, not tested without its shipped config."""
    comps, verdict, named = [], f"pending (no {gmt} runs)", []
    if gmt not in methods and not has_config(ds, gmt, bb):
        verdict = f"not tested (no shipped config {ds}/{gmt}_{bb}.yaml)"
    if gmt in methods:
        comps = [_withheld(paired(index, ds, bb, gmt, "lri_bernoulli", metric), min_seeds)]
        verdict, named = above_verdict(comps, min_seeds)
    return {
        "claim": CLAIM_GMT[gmt],
        "difference": f"{gmt} - method",
        "verdict": verdict,
        "named": named,
        "comparisons": comps,
    }


def _signed(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "n/a"


def _comparison_text(c: dict) -> str:
    if c.get("pending"):
        return f"{c['method']} pending (n={c['n']})"
    if not math.isfinite(c["lo"]):
        return f"{c['method']} {_signed(c['mean'])} (n={c['n']}, no interval)"
    return (
        f"{c['method']} {_signed(c['mean'])} [{_signed(c['lo'])}, {_signed(c['hi'])}] (n={c['n']})"
    )


def _reason(rec: dict) -> str:
    """Why a verdict names its methods."""
    if rec["verdict"] == "does not hold":
        return "interval below 0"
    if rec["verdict"] != "not shown":
        return "too few seeds"
    finite = [math.isfinite(c["lo"]) for c in rec["comparisons"] if c["method"] in rec["named"]]
    if all(finite):
        return "interval contains 0"
    return "no interval from one seed" if not any(finite) else "interval contains 0 or undefined"


def claim_text(rec: dict) -> str:
    """One Markdown line of a claim record."""
    verdict = rec["verdict"]
    if rec["named"]:
        verdict += f" ({_reason(rec)}: {', '.join(rec['named'])})"
    comps = "; ".join(_comparison_text(c) for c in rec["comparisons"])
    diff = f"; {rec['difference']}: {comps}" if comps else ""
    return f"- {rec['dataset']} / {rec['backbone']}, {rec['metric']}: {rec['claim']}: **{verdict}**{diff}"


# --- the table -------------------------------------------------------------------------------

TITLES = {"actstrack": "ActsTrack-sim", "tau3mu": "Tau3Mu-sim", "synmol": "SynMol"}


def literature(ds: str, bb: str, method: str) -> dict | None:
    """The literature's real-data numbers of a row (percent), ``None`` where there are none
    (other backbones than EGNN, methods the literature does not report)."""
    if bb != LITERATURE_BACKBONE or method not in LITERATURE.get(ds, {}):
        return None
    auc, prec = LITERATURE[ds][method]
    return {"interp_auc": auc, "prec": prec, "prec_k": LITERATURE_K[ds], "beside": "prec@k1"}


def _methods(index, ds: str, bb: str) -> list[str]:
    """The rows of one dataset and backbone: the expected methods (pending without runs; those
    of a run without a shipped config left out), those with runs, and on EGNN those the
    literature reports; post-hoc first, then LRI, then GMT. The claims compare LRI-Bernoulli
    with every post-hoc row here."""
    want = {m for m in POST_HOC if has_config(ds, "plain", bb)}
    runs = ("lri_bernoulli", MASKPOOL, "lri_gaussian", "pointmask", *GMT_METHODS)
    want |= {m for m in runs if has_config(ds, m, bb)}
    want |= {m for (d, b, m) in index if (d, b) == (ds, bb)}
    if bb == LITERATURE_BACKBONE:
        want |= set(LITERATURE.get(ds, {}))
    return sorted(want, key=lambda m: (not is_post_hoc(m), m.startswith("gmt"), m))


def table_rows(rows, min_seeds: int, grid=()) -> list[dict]:
    """One record per (dataset, backbone, method) of ``rows`` and of the (dataset, backbone)
    ``grid``: ``seeds`` (seeds with a row), per metric a :func:`cell`, ``literature``."""
    index = _by_seed(rows)
    pairs = set(grid) | {(d, b) for d, b, _ in index}
    table = []
    for ds, bb in sorted(pairs, key=lambda p: (p[0], p[1] != LITERATURE_BACKBONE, p[1])):
        for m in _methods(index, ds, bb):
            by_seed = index.get((ds, bb, m), {})
            metrics = {
                metric: cell([r.get(metric, math.nan) for r in by_seed.values()], min_seeds)
                for metric in METRICS
            }
            table.append(
                {"dataset": ds, "backbone": bb, "method": m, "seeds": len(by_seed)}
                | {"metrics": metrics, "literature": literature(ds, bb, m)}
            )
    return table


def _precision_ks(ds: str) -> list[int]:
    try:
        return list(load_yaml(CONFIGS / "datasets" / f"{ds}.yaml")["eval"]["precision_k"])
    except (OSError, ConfigError, KeyError, TypeError):
        return []


def _header(ds: str) -> list[str]:
    ks = _precision_ks(ds)
    prec = [f"prec@k{i} (k={ks[i - 1]})" if i <= len(ks) else f"prec@k{i}" for i in (1, 2, 3)]
    lit = ["literature interp AUC (%)", "literature prec (%)"]
    return ["method", "backbone", "seeds", "interp AUC (mean [lo, hi])", *prec, "pred AUC", *lit]


def _markdown_table(table: list[dict], ds: str, min_seeds: int) -> list[str]:
    cols = _header(ds)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for t in (t for t in table if t["dataset"] == ds):
        lit = t["literature"]
        cells = [cell_text(t["metrics"][m], min_seeds) for m in TABLE_METRICS]
        lits = [f"{lit['interp_auc']:.2f}", f"{lit['prec']:.2f}"] if lit else ["—", "—"]
        lines.append(
            "| " + " | ".join([t["method"], t["backbone"], str(t["seeds"]), *cells, *lits]) + " |"
        )
    return lines


def _reference(kind: str, method: str) -> str:
    """The reference schedule of ``kind`` / ``method`` (EGNN config): ``300`` or
    ``300: 100 + 200 warm-up``."""
    train = load_yaml(CONFIGS / kind / f"{method}_{LITERATURE_BACKBONE}.yaml")["train"]
    epochs, warmup = train["epochs"], train.get("warmup") or 0
    return f"{epochs}: {epochs - warmup} + {warmup} warm-up" if warmup else str(epochs)


def schedule_text() -> str:
    """The benchmark schedule (``_common.BENCH_EPOCHS``) beside the reference's."""
    parts, short = [], []
    for kind, methods in BENCH_EPOCHS.items():
        for method, epochs in methods.items():
            ref = _reference(kind, method)
            if epochs < int(ref.split(":")[0]) and kind not in short:
                short.append(kind)
        parts.append(
            f"{kind}: " + ", ".join(f"{m} {e} ({_reference(kind, m)})" for m, e in methods.items())
        )
    text = (
        "Training epochs, `_common.BENCH_EPOCHS` (the reference configs' in parentheses; "
        f"the mask-weighted-pool run has LRI-Bernoulli's): {'; '.join(parts)}."
    )
    if short:
        text += (
            f" {' and '.join(short)} {'is' if len(short) == 1 else 'are'} shortened from the "
            "reference schedule because a run must fit the machine (about 15 minutes per run "
            "on 2 CPU cores)."
        )
    return text


def epochs_used(rows) -> dict[str, dict[str, list[int]]]:
    """``{dataset: {run method: [epochs]}}`` of the runs behind ``rows``, read from their run
    names ``<kind>_<method>_<backbone>_s<seed>_e<epochs>``."""
    used: dict[str, dict[str, set[int]]] = {}
    for r in rows:
        ds, bb = r["dataset"], re.escape(str(r.get("backbone", "")))
        # the backbone named, since it may hold an underscore (point_transformer)
        found = re.fullmatch(rf"{re.escape(ds)}_(\w+)_{bb}_s\d+_e(\d+)", str(r.get("run", "")))
        if found:
            used.setdefault(ds, {}).setdefault(found[1], set()).add(int(found[2]))
    return {d: {m: sorted(e) for m, e in sorted(ms.items())} for d, ms in sorted(used.items())}


NOTES = """\
Every cell: the mean over seeds and the 95 % Student-t interval of the mean,
mean ± t(0.975, n-1) · sd / √n (sd with ddof 1), on the hepx simulations. A cell with fewer
than {min_seeds} seed(s) reads `pending (n of {min_seeds} seeds)`: no cell is filled from
fewer, nor a claim's comparison. prec@k1..k3: the dataset's precision k list. Post-hoc methods
explain the plain run; the LRI rows are the LRI runs' own scores; `lri_bernoulli` pools
unweighted (the reference), `lri_bernoulli_maskpool` is a second LRI-Bernoulli run that also
weights the global pool by the mask (`{override}`).

Literature columns (EGNN rows only): the real-data numbers, in percent, that the GMT paper's
Table 3 quotes from the LRI paper; real ActsTrack / Tau3Mu data, not these simulations. The
GMT paper labels every precision column Prec@12, but the LRI reference code logs the precision
at its first k (`topk[0]`: ActsTrack 12, Tau3Mu 3), so the literature precision stands beside
prec@k1; the Tau3Mu literature column is most likely precision@3 (the reference's first k),
not @12. hepx's `pointmask_posthoc` is not the published PointMask, which is the row
`pointmask` (a run trained with the mask from scratch). SynMol has no literature numbers
here (the table quotes none). A run without a shipped config is skipped: GMT runs with EGNN
only, as in the GMT paper.
"""


CLAIMS_NOTE = """\
"LRI-Bernoulli above every post-hoc method" compares LRI-Bernoulli with every baseline row of
the dataset and backbone above (the post-hoc methods and PointMask), also those without a
record yet: it stays pending until each has {min_seeds} seeds paired with LRI-Bernoulli's, and
then holds only if every interval lies above 0. A pending verdict names the complete
comparisons whose interval already contains 0: with those seeds the claim cannot hold, only
be not shown or (if a pending interval lands below 0) not hold."""


def _markdown(table, records, rows, min_seeds: int, command: str, smoke: bool) -> str:
    used = "; ".join(
        f"{ds}: " + ", ".join(f"{m} {'/'.join(map(str, e))}" for m, e in ms.items())
        for ds, ms in epochs_used(rows).items()
    )
    lines = ["**--smoke run: tiny data and models, 2 epochs; the numbers mean nothing.**", ""]
    lines = lines if smoke else []
    lines += ["# Paper-style table: mean and 95 % interval over seeds", ""]
    lines += [NOTES.format(min_seeds=min_seeds, override=MASKPOOL_OVERRIDE), schedule_text(), ""]
    lines += [f"Epochs of the runs in this table: {used or 'none yet'}.", ""]
    lines += ["Every cell can be regenerated with this command (every finished report under its"]
    lines += ["`--out` enters the table, also those of runs on other backbones or seeds):", ""]
    lines += ["```bash", command, "```"]
    for ds in sorted({t["dataset"] for t in table}):
        lines += ["", f"## {TITLES.get(ds, ds)} (`{ds}`)", ""]
        lines += _markdown_table(table, ds, min_seeds)
    lines += ["", "## Claims: paired per-seed differences, mean [95 % interval]", ""]
    lines += [CLAIMS_NOTE.format(min_seeds=min_seeds), ""]
    lines += [claim_text(r) for r in records]
    checked = [t for t in table if any(t["metrics"][m]["n"] for m in CHECK_METRICS)]
    if checked:
        lines += [
            "",
            "## Sanity checks: Spearman correlation with the changed model's explanation",
            "",
        ]
        lines += [CHECKS_NOTE, ""]
        for ds in sorted({t["dataset"] for t in checked}):
            lines += ["", f"### {TITLES.get(ds, ds)} (`{ds}`)", ""]
            lines += checks_table(checked, ds, min_seeds, missed_draws(rows))
    return "\n".join(lines) + "\n"


CHECKS_NOTE = """Spearman rank correlation of each test event's explanation with the explanation of a changed
model (64 test events, averaged; mean and 95 % interval over seeds as above). Model
randomisation (Adebayo et al. 2018), re-initialising the weights from the top down: an
explanation that reflects what the model learnt changes, so the correlation should be low,
after the head alone and more so with every weight random. Model perturbation (Rahman et al.):
weights perturbed as far as the accuracy stays within tolerance; the explanation should stay,
so the correlation should be high; a draw whose noise never met the tolerance is counted
beside the cell. Rows whose reports ran the checks only (`--no-checks` leaves them out)."""


def missed_draws(rows) -> dict[tuple, int]:
    """``{(dataset, backbone, method): draws}``: the model-perturbation draws, over all
    seeds, whose noise never met the accuracy tolerance (``sanity_perturb_missed``)."""
    missed: dict[tuple, int] = {}
    for r in rows:
        key = (r["dataset"], r["backbone"], r["method"])
        missed[key] = missed.get(key, 0) + int(r.get("sanity_perturb_missed") or 0)
    return missed


def checks_table(
    table: list[dict], ds: str, min_seeds: int, missed: dict[tuple, int] | None = None
) -> list[str]:
    """Markdown lines of the sanity checks of ``ds``: one row per method and backbone of
    ``table`` (:func:`table_rows`), a :func:`cell_text` per :data:`CHECK_METRICS`; the
    perturbation cell flagged where ``missed`` (:func:`missed_draws`) counts draws."""
    cols = ["method", "backbone", *CHECK_METRICS.values()]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for t in (t for t in table if t["dataset"] == ds):
        cells = [cell_text(t["metrics"][m], min_seeds) for m in CHECK_METRICS]
        n = (missed or {}).get((ds, t["backbone"], t["method"]), 0)
        if n:
            cells[-1] += f" (tolerance missed in {n} draw{'s' if n > 1 else ''})"
        lines.append("| " + " | ".join([t["method"], t["backbone"], *cells]) + " |")
    return lines


def _finite(x):
    return x if not isinstance(x, float) or math.isfinite(x) else None


def _write_csv(table: list[dict], path: Path, min_seeds: int) -> None:
    flat = []
    for t in table:
        row = {k: t[k] for k in ("dataset", "backbone", "method", "seeds")}
        for metric, c in t["metrics"].items():
            row[metric] = cell_text(c, min_seeds)
            row |= {f"{metric}_{k}": _finite(c[k]) for k in ("mean", "lo", "hi", "n")}
        lit = t["literature"] or {}
        row |= {f"literature_{k}": lit.get(k) for k in ("interp_auc", "prec", "prec_k")}
        flat.append(row)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(flat[0]) if flat else ["dataset", "method"])
        w.writeheader()
        w.writerows(flat)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return _finite(obj)


def _aggregate(rows, out: Path, smoke: bool = False, min_seeds: int = 3, grid=(), command=""):
    """Write ``paper_table.{md,csv,json}`` of ``rows`` (:func:`_collect`) under ``out``;
    ``grid``: the (dataset, backbone) pairs shown even without rows."""
    command = command or "OMP_NUM_THREADS=1 python benchmarks/paper_table.py"
    table = table_rows(rows, min_seeds, grid)
    index = _by_seed(rows)
    pairs = dict.fromkeys((t["dataset"], t["backbone"]) for t in table)
    records = [rec for ds, bb in pairs for rec in claims(index, ds, bb, min_seeds)]
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(table, out / "paper_table.csv", min_seeds)
    doc = {
        "interval": "95 % Student-t interval of the mean over seeds (sd with ddof 1)",
        "min_seeds": min_seeds,
        "smoke": smoke,
        "command": command,
        "bench_epochs": BENCH_EPOCHS,
        "epochs_used": epochs_used(rows),
        "literature": {
            "source": "GMT paper, Table 3, quoting the LRI paper; real data, EGNN",
            "unit": "percent",
            "precision_k": LITERATURE_K,
            "beside": "prec@k1",
        },
        "cells": table,
        "claims": records,
    }
    (out / "paper_table.json").write_text(json.dumps(_json_safe(doc), indent=1) + "\n")
    text = _markdown(table, records, rows, min_seeds, command, smoke)
    (out / "paper_table.md").write_text(text)
    print(text)


# --- runs and reports ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("bench/paper"), help="reports and table")
    ap.add_argument("--runs-dir", type=Path, default=WORKDIR / "runs", help="shared run cache")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--backbones", nargs="+", default=["egnn", "dgcnn"])
    ap.add_argument(
        "--datasets",
        nargs="+",
        default=["actstrack", "tau3mu"],
        choices=DATASETS,
        metavar="DS",
        help=f"of {', '.join(DATASETS)} (default actstrack tau3mu)",
    )
    ap.add_argument("--epochs-actstrack", type=int, default=None, help="default: BENCH_EPOCHS")
    ap.add_argument("--epochs-tau3mu", type=int, default=None, help="default: BENCH_EPOCHS")
    ap.add_argument("--epochs-synmol", type=int, default=None, help="default: BENCH_EPOCHS")
    ap.add_argument(
        "--samples-synmol",
        type=int,
        default=None,
        help=f"SynMol molecules (default {EVENTS['synmol']}, the paper's; --smoke "
        f"{SMOKE_EVENTS['synmol']}); another count trains into runs-dir/synmol_<N>: give it its "
        "own --out too, since finished reports are reused",
    )
    ap.add_argument(
        "--min-seeds", type=int, default=None, help="seeds a cell needs (default 3, --smoke 1)"
    )
    ap.add_argument("--smoke", action="store_true", help="smallest settings (pipeline check)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-samples", type=int, default=None, help="test samples explained per run")
    ap.add_argument("--draws", type=int, default=None, help="group draws (default 50)")
    ap.add_argument("--robustness-samples", type=int, default=None, help="default 64")
    ap.add_argument("--bernmask-iterations", type=int, default=None, help="default 500")
    ap.add_argument(
        "--no-checks",
        action="store_true",
        help="skip the sanity and invariance checks (not in the table; for the fitted methods "
        "they cost several times the explanation, one refit per randomisation stage); the "
        "reports then lack those columns",
    )
    ap.add_argument(
        "--fit-epochs", type=int, default=None, help="BernMask-P/PointMask (default 100/50)"
    )
    ap.add_argument(
        "--ig-baseline",
        choices=BASELINES,
        default=None,
        help="IG / GGIG path baseline (default origin)",
    )
    ap.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=(*POST_HOC, *SELF_INTERPRETABLE, MASKPOOL),
        metavar="METHOD",
        help="evaluate only these methods (default all) into reports named "
        "<dataset>_<backbone>_s<seed>-<tag>; their rows replace older ones in the table. "
        "With --per-method: only these methods' reports, named as without it (no --tag; "
        f"the mask-pool run is {MASKPOOL})",
    )
    ap.add_argument("--tag", default=None, help="report name suffix for --methods")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="train the runs it trains with train.compile (the same model, fused layers; a "
        "finished run is reused either way)",
    )
    ap.add_argument(
        "--record",
        type=Path,
        default=None,
        help="also copy every finished report's rows to RECORD/reports/<name>.json (e.g. "
        "benchmarks/results/paper of a checkout), and its runs' per-epoch and test metrics to "
        "RECORD/curves/<run>/, and skip the reports recorded there",
    )
    ap.add_argument(
        "--per-method",
        action="store_true",
        help="evaluate one method at a time, into reports <dataset>_<backbone>_s<seed>[-<job>]-"
        "<method> (with --record each is kept as soon as it is done: runs spread over several "
        "stretches of work lose at most the method under way)",
    )
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="only regenerate the table from the finished reports under --out (no simulation, "
        "training or evaluation), with a cell for every dataset and backbone given",
    )
    return ap


def _settings(args) -> tuple[list[str], dict]:
    """The run overrides and the evaluation options of ``args``."""
    overrides: list[str] = []
    eval_opts: dict = {"robustness_draws": 50, "robustness_samples": 64}
    if args.smoke:
        args.epochs_actstrack = args.epochs_tau3mu = args.epochs_synmol = 2
        overrides = ["model.hidden_channels=8", "model.num_layers=2", "train.warmup=1"]
        eval_opts = {
            "robustness_draws": 2,
            "robustness_samples": 4,
            "bernmask_iterations": 10,
            "fit_epochs": 1,
            "ig_steps": 8,
            "max_samples": 32,
        }
    for key, val in (
        ("max_samples", args.max_samples),
        ("robustness_draws", args.draws),
        ("robustness_samples", args.robustness_samples),
        ("bernmask_iterations", args.bernmask_iterations),
        ("fit_epochs", args.fit_epochs),
        ("ig_baseline", args.ig_baseline),
    ):
        if val is not None:
            eval_opts[key] = val
    if args.no_checks:
        eval_opts.update(sanity=False, robustness=False)
    if args.compile:
        overrides.append("train.compile=true")
    return overrides, eval_opts


def _report_jobs(
    name: str, methods: list[str] | None, tag: str | None, backbone: str = ""
) -> list[tuple]:
    """``(report name, runs, methods)`` of one dataset, backbone and seed: the base report of
    the plain and LRI runs, the mask-pool run's own report ``<name>-maskpool`` and, with
    EGNN (GMT's backbone, the only one it has configs for), the GMT runs' report
    ``<name>-gmt``; or with ``--methods`` one report ``<name>-<tag>`` (the mask-pool run in it
    when LRI-Bernoulli is re-evaluated; :func:`_collect` tells its rows by their run)."""
    gmt = GMT_METHODS if backbone == GMT_BACKBONE else ()
    if methods is None:
        jobs = [(name, RUN_METHODS, None), (f"{name}-maskpool", (MASKPOOL,), ["lri_bernoulli"])]
        return jobs + ([(f"{name}-gmt", gmt, list(gmt))] if gmt else [])
    runs = RUN_METHODS + ((MASKPOOL,) if "lri_bernoulli" in methods else ())
    runs += tuple(m for m in gmt if m in methods)
    return [(f"{name}-{tag}", runs, methods)]


def split_by_method(
    name: str,
    kinds: Sequence[str],
    methods: list[str] | None,
    only: Sequence[str] | None = None,
) -> list[tuple]:
    """``(report name, run kinds, methods)`` of one job evaluated one method at a time
    (``--per-method``): ``<name>-<method>`` per method the job's runs give (every post-hoc
    method for the plain run, its own scores for the others; only ``methods`` where given),
    with the run that gives it, so that every finished method is kept even when a later one
    does not finish. ``only``: the table methods to keep (``--methods`` with ``--per-method``;
    the mask-pool run's is :data:`MASKPOOL`)."""
    own = {MASKPOOL: "lri_bernoulli"}
    given = [(k, m) for k in kinds for m in (POST_HOC if k == "plain" else (own.get(k, k),))]
    given = [(k, m) for k, m in given if methods is None or m in methods]
    if only is not None:
        given = [(k, m) for k, m in given if (MASKPOOL if k == MASKPOOL else m) in only]
    return [(f"{name}-{m}", (k,), [m]) for k, m in given]


def _train(ds: str, kind: str, bb: str, *, epochs: int | None, overrides, **kwargs) -> Path:
    """:func:`train_run` of ``kind``: a method of :data:`RUN_METHODS` or :data:`MASKPOOL`
    (LRI-Bernoulli with ``model.bernoulli.mask_pool=true``, run name label ``kind``)."""
    method = "lri_bernoulli" if kind == MASKPOOL else kind
    extra = [MASKPOOL_OVERRIDE] if kind == MASKPOOL else []
    return train_run(
        ds,
        method,
        bb,
        epochs=bench_epochs(ds, method, epochs),
        overrides=[*overrides, *extra],
        label=kind,
        **kwargs,
    )


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = _parser()
    args = ap.parse_args(argv)
    if args.methods and not args.tag and not args.per_method:
        ap.error("--methods needs --tag (the re-evaluation gets its own report directory)")
    if args.tag == "maskpool":
        ap.error("--tag maskpool is the mask-pool run's report; choose another tag")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    overrides, eval_opts = _settings(args)
    min_seeds = args.min_seeds or (1 if args.smoke else 3)
    command = "OMP_NUM_THREADS=1 python benchmarks/paper_table.py " + shlex.join(argv)
    grid = [(ds, bb) for ds in args.datasets for bb in args.backbones]
    if args.table_only:  # the command that computes the cells: the same without --table-only
        command = command.replace(" --table-only", "").strip()
        _aggregate(_collect(out / "reports"), out, args.smoke, min_seeds, grid, command)
        return
    events = dict(SMOKE_EVENTS if args.smoke else EVENTS)
    if args.samples_synmol is not None:
        events["synmol"] = args.samples_synmol
    if args.smoke:  # tiny private data and runs, never mixed with the shared cache
        data = {k: simulated_dataset(k, events[k], workdir=out) for k in args.datasets}
        runs_dir = {k: out / "runs" for k in args.datasets}
    else:
        data = {kind: simulated_dataset(kind, events[kind]) for kind in args.datasets}
        # runs are named without the data size: another size trains into a directory of its own
        runs_dir = {
            k: args.runs_dir / (f"{k}_{events[k]}" if events[k] != EVENTS[k] else "")
            for k in args.datasets
        }
    epochs = {ds: getattr(args, f"epochs_{ds}") for ds in DATASETS}
    skipped: set[str] = set()

    for seed in args.seeds:
        for ds in args.datasets:
            for bb in args.backbones:
                train = {
                    "epochs": epochs[ds],
                    "seed": seed,
                    "runs_dir": runs_dir[ds],
                    "data": data[ds],
                    "overrides": overrides,
                    "device": args.device,
                }
                # per method without --tag, --methods only picks reports, named as without it
                chosen = None if args.per_method and not args.tag else args.methods
                jobs, missing = available_jobs(
                    _report_jobs(f"{ds}_{bb}_s{seed}", chosen, args.tag, bb), ds, bb
                )
                for reason in missing:
                    if reason not in skipped:  # once, not per seed
                        skipped.add(reason)
                        print(f"skipped: {reason}", flush=True)
                for name, kinds, methods in jobs:
                    parts = [(name, kinds, methods)]
                    if args.per_method:
                        only = None if chosen else args.methods
                        parts = split_by_method(name, kinds, methods, only=only)
                    for part, part_kinds, part_methods in parts:
                        report = out / "reports" / part
                        if _finished(report, args.record):
                            continue  # finished reports are reused
                        runs = [_train(ds, kind, bb, **train) for kind in part_kinds]
                        evaluate(
                            runs, report, methods=part_methods, device=args.device, seed=seed,
                            **eval_opts,
                        )  # fmt: skip
                        if args.record is not None:
                            record_report(report, args.record)
                            for run in runs:
                                record_curve(run, args.record)
    _aggregate(_collect(out / "reports"), out, args.smoke, min_seeds, grid, command.strip())


def _finished(report: Path, record: Path | None) -> bool:
    """Whether the report ``<out>/reports/<name>`` is done: written by the evaluation, recorded
    beside it (``<name>.json``) or in the ``--record`` directory."""
    done = [report / "results.json", report.with_suffix(".json")]
    if record is not None:
        done.append(record / "reports" / f"{report.name}.json")
    return any(path.exists() for path in done)


def record_report(report: Path, record: Path) -> Path:
    """Copy a finished report's rows (``<report>/results.json``) to
    ``<record>/reports/<name>.json``, the form kept in ``benchmarks/results`` (whose table
    ``--table-only`` regenerates); returns the copy."""
    target = record / "reports" / f"{report.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text((report / "results.json").read_text())
    tmp.replace(target)
    return target


def record_curve(run: Path, record: Path) -> Path | None:
    """Copy a trained run's per-epoch validation metrics and its selected epoch's test metrics
    (:class:`~hepx.run.RunLayout`'s ``metrics_csv`` and ``test_metrics``, which
    `benchmarks/mask_stability.py` reads) to ``<record>/curves/<run name>/``, under the same
    names; ``None`` if the run lacks one of them (a run trained elsewhere). Returns the
    directory."""
    layout = RunLayout(run)
    files = (layout.metrics_csv, layout.test_metrics)
    if not all(path.is_file() for path in files):
        return None
    target = record / "curves" / run.name
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        with atomic_file(target / path.name) as tmp:
            tmp.write_bytes(path.read_bytes())
    return target


def _report_files(reports: Path) -> list[tuple[str, Path]]:
    """``(report name, rows file)`` of every finished report: a directory written by
    :func:`hepx.evaluation.evaluate` (``<name>/results.json``) or a recorded one
    (``<name>.json``, benchmarks/results)."""
    found = [(p.parent.name, p) for p in reports.glob("*_s*/results.json")]
    found += [(p.stem, p) for p in reports.glob("*_s*.json")]
    return found


def table_dataset(row: dict, report: str) -> str:
    """The table's dataset of a report row: the one its report is named after
    (``<dataset>_<backbone>_s<seed>``), since the row's own ``dataset`` is the run's data kind,
    ``generic`` for SynMol; the row's if the name does not have that form."""
    prefix = report.split("-", 1)[0].rsplit("_s", 1)[0]
    suffix = f"_{row.get('backbone')}"
    return prefix[: -len(suffix)] if prefix.endswith(suffix) else row["dataset"]


def table_method(row: dict, report: str) -> str:
    """The table's method of a report row: ``lri_bernoulli_maskpool`` for LRI-Bernoulli rows
    of a mask-pool run (run ``<kind>_lri_bernoulli_maskpool_...``, or report
    ``<name>-maskpool``), else the row's own method."""
    if row["method"] != "lri_bernoulli":
        return row["method"]
    pooled = str(row.get("run", "")).startswith(f"{row['dataset']}_{MASKPOOL}_")
    return MASKPOOL if pooled or report.endswith("-maskpool") else row["method"]


def _collect(reports: Path) -> list[dict]:
    """Rows of every finished report under ``reports`` (``<dataset>_<backbone>_s<seed>``,
    optionally ``-<tag>``), so that processes started on different backbones or seeds all feed
    one table; the rows' dataset the report's (:func:`table_dataset`) and the mask-pool run's
    rows relabelled (:func:`table_method`). Where several
    reports hold the same (dataset, backbone, method, seed), a ``--methods`` re-evaluation
    (``-<tag>``) replaces the base report's rows, and among re-evaluations the newest wins.
    Tagged before time, because a git checkout of committed reports (``benchmarks/results``)
    gives every file the same modification time."""
    rows: dict[tuple, dict] = {}
    found = sorted(
        _report_files(reports),
        key=lambda item: ("-" in item[0], item[1].stat().st_mtime),
    )
    for name, path in found:
        seed = int(name.split("-", 1)[0].rsplit("_s", 1)[1])  # a tag may hold "_s" too
        for r in json.loads(path.read_text()):
            ks = sorted(int(k[5:]) for k in r if k.startswith("prec@"))
            for i, k in enumerate(ks):
                r[f"prec@k{i + 1}"] = r[f"prec@{k}"]
            r["dataset"] = table_dataset(r, name)
            r["method"] = table_method(r, name)
            rows[(r["dataset"], r["backbone"], r["method"], seed)] = {**r, "seed": seed}
    return list(rows.values())


if __name__ == "__main__":
    run_script(main)
