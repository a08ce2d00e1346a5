"""``hepx evaluate RUN_DIR... [--methods ...] --out REPORT_DIR``: the evaluation table.

For every run directory (written by ``hepx train``) and every applicable method:

* plain runs (``method: plain``) are explained by the post-hoc methods (frozen classifier);
* LRI runs by their own scores (``lri_bernoulli`` / ``lri_gaussian``).

One row per (method, backbone, dataset, run): prediction ROC AUC / accuracy on the test split,
interpretation ROC AUC (pooled and per-sample mean), precision@k, fidelity (fid+ / fid- of the
top-k points, k = first precision k), explanation robustness (per group: median over samples of
the cosine and Spearman similarities, with the model's own invariance), sanity checks (model
randomisation and model perturbation Spearman) and wall times (fit, explain per sample).

REPORT_DIR gets ``results.csv``, ``results.md``, ``results.json`` and ``roc_<dataset>_<backbone>.png``
(ROC curves of the point scores of the positive test samples), written atomically.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from hepx._atomic import atomic_dir
from hepx.errors import CheckpointError, ConfigError, InputError

log = logging.getLogger("hepx")

__all__ = ["DEFAULTS", "evaluate", "load_run", "register_cli"]


DEFAULTS: dict[str, Any] = {
    "max_samples": None,  # test samples explained (None: all)
    "batch_size": 64,
    "robustness_samples": 32,  # samples for invariance / sanity checks
    "robustness_draws": 50,  # Monte Carlo group draws
    "sanity": True,
    "robustness": True,
    "bernmask_iterations": None,  # None: 500 (reference)
    "fit_epochs": None,  # None: reference (100 ActsTrack / 50 Tau3Mu)
    "fit_max_batches": None,
    "ig_steps": 50,
    "ig_baseline": "origin",  # IG / GGIG path baseline: "origin" or "centroid"
    "seed": 0,
    "data": None,  # evaluate on another dataset directory (distribution shift)
}


def load_run(run_dir: str | os.PathLike, data: str | os.PathLike | None = None):
    """Load ``run_dir``'s best checkpoint, model and test split.

    Returns ``(model, config, test_dataset, train_dataset, dataset_meta)``.

    Raises:
        CheckpointError: no run / checkpoint there, or a model that does not fit the data.
        InputError: the dataset is missing or of another kind than the run's.
    """
    from hepx.data import load_dataset
    from hepx.training import load_checkpoint, model_from_checkpoint

    run = Path(run_dir)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run directory")
    ckpt = run / "checkpoints" / "best.pt"
    if not ckpt.exists():
        raise CheckpointError(
            f"{run}: no trained model (checkpoints/best.pt missing); expected a run directory "
            "written by `hepx train`"
        )
    state = load_checkpoint(ckpt)
    cfg = state["config"]
    dpath = Path(data) if data is not None else Path(cfg["dataset"]["path"])
    if not dpath.is_absolute() and not dpath.exists() and (run / dpath).exists():
        dpath = run / dpath
    try:
        ds = load_dataset(dpath)
    except InputError as err:
        raise InputError(f"run {run}: cannot load its dataset {dpath} ({err})") from None
    kind, dkind = cfg["dataset"].get("kind"), ds.meta.get("kind")
    if kind is not None and kind != dkind:
        raise InputError(f"run {run} was trained on a '{kind}' dataset but {dpath} holds '{dkind}'")
    mcfg = cfg["model"]
    per = ds.meta.get("period")
    if per is not None and all(p is None for p in per):
        per = None
    rec_per = mcfg.get("period")
    if rec_per is not None and all(p is None for p in rec_per):
        rec_per = None
    if (mcfg.get("pos_dim"), mcfg.get("x_dim")) != (ds.pos_dim, ds.num_point_features) or (
        rec_per is not None
        and per is not None
        and [float(p) if p else None for p in rec_per] != [float(p) if p else None for p in per]
    ):
        raise CheckpointError(
            f"run {run} is from another dataset: model pos_dim={mcfg.get('pos_dim')}, "
            f"x_dim={mcfg.get('x_dim')}, period={rec_per}; data {dpath} has pos_dim={ds.pos_dim}, "
            f"x_dim={ds.num_point_features}, period={per}"
        )
    model = model_from_checkpoint(state).eval()
    if data is not None:
        test, train = ds, None  # a foreign (e.g. shifted) dataset: all of it is test data
        splits = (
            load_dataset(cfg["dataset"]["path"]).split(
                cfg["dataset"]["split"], seed=cfg["dataset"]["split_seed"]
            )
            if Path(cfg["dataset"]["path"]).exists()
            else None
        )
        train = splits["train"] if splits else None
    else:
        splits = ds.split(cfg["dataset"]["split"], seed=cfg["dataset"]["split_seed"])
        test, train = splits["test"], splits["train"]
    return model, cfg, test, train, dict(ds.meta, path=str(dpath))


def _methods_for(run_method: str, requested: Sequence[str] | None) -> list[str]:
    from hepx.explain.base import POST_HOC

    if run_method == "plain":
        cands = list(POST_HOC)
    else:
        cands = [run_method]
    return [m for m in cands if requested is None or m in requested]


def _check_methods(methods: Sequence[str] | None) -> list[str] | None:
    from hepx.explain import available_methods

    if methods is None:
        return None
    known = available_methods()
    for m in methods:
        if m not in known:
            raise ConfigError(f"unknown method {m!r}; known methods: {', '.join(known)}")
    return list(methods)


def _subset(ds, n: int | None):
    if n is None or n >= len(ds):
        return ds
    return ds[:n]


def _explain_all(explainer, model, loader, device):
    scores, labels, batches, ys, logits = [], [], [], [], []
    off = 0
    for data in loader:
        data = data.to(device)
        s = explainer(model, data)
        with torch.no_grad():
            out = model(data)
        logits.append(getattr(out, "logits", out).view(-1).cpu())
        scores.append(s.float().cpu())
        labels.append(data.node_label.cpu())
        batches.append(data.batch.cpu() + off)
        ys.append(data.y.view(-1).cpu())
        off += data.num_graphs
    cat = torch.cat
    return cat(scores), cat(labels), cat(batches), cat(ys), cat(logits)


def _fidelity_all(model, loader, scores, k, device):
    from hepx.explain.fidelity import fidelity

    fp, fm, ys = [], [], []
    lo = 0
    for data in loader:
        data = data.to(device)
        n = data.num_nodes
        f = fidelity(model, data, scores[lo : lo + n].to(device), k)
        lo += n
        fp.append(f["fid_plus"].cpu())
        fm.append(f["fid_minus"].cpu())
        ys.append(data.y.view(-1).cpu())
    y = torch.cat(ys) > 0.5
    fp, fm = torch.cat(fp)[y], torch.cat(fm)[y]
    nan = float("nan")
    return (float(fp.mean()) if len(fp) else nan, float(fm.mean()) if len(fm) else nan)


def evaluate(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    methods: Sequence[str] | None = None,
    device: str = "cpu",
    **options: Any,
) -> list[dict[str, Any]]:
    """Evaluate ``methods`` (default: all applicable) on the runs; write the report.

    Options (see :data:`DEFAULTS`): ``max_samples``, ``batch_size``, ``robustness_samples``,
    ``robustness_draws``, ``sanity``, ``robustness``, ``bernmask_iterations``, ``fit_epochs``,
    ``fit_max_batches``, ``ig_steps``, ``ig_baseline``, ``seed``, ``data``.

    Returns the rows of the table.
    """
    from hepx.explain import get_explainer
    from hepx.explain.base import default_hparams
    from hepx.explain.metrics import (
        interpretation_roc_auc,
        per_sample_interpretation_auc,
        precision_at_k,
        prediction_metrics,
    )

    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown evaluate options {sorted(unknown)}; allowed: {', '.join(DEFAULTS)}"
        )
    opt = {**DEFAULTS, **options}
    requested = _check_methods(methods)
    if not run_dirs:
        raise InputError("no run directories given")
    loaded = [(Path(r), *load_run(r, opt["data"])) for r in run_dirs]  # validate all first
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, str], list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for run, model, cfg, test, train, meta in loaded:
        model = model.to(device)
        kind = meta.get("kind", "?")
        mcfg = cfg["model"]
        backbone, run_method = mcfg["backbone"], mcfg["method"]
        ks = list(cfg["eval"]["precision_k"])
        test = _subset(test, opt["max_samples"])
        loader = DataLoader(test, batch_size=opt["batch_size"])
        todo = _methods_for(run_method, requested)
        if not todo:
            log.warning("%s (%s run): none of the requested methods applies", run, run_method)
        rob_data = next(iter(DataLoader(test, batch_size=max(1, opt["robustness_samples"]))))
        rob_data = rob_data.to(device)
        for method in todo:
            hp = default_hparams(method, kind, backbone)
            fit_epochs = hp.pop("epochs", None)
            if method == "bernmask" and opt["bernmask_iterations"] is not None:
                hp["iterations"] = opt["bernmask_iterations"]
            if method == "ig":
                hp["n_steps"] = opt["ig_steps"]
            if method in ("ig", "ggig"):
                hp["baseline"] = opt["ig_baseline"]
            if method in ("bernmask_p", "pointmask"):
                hp["seed"] = opt["seed"]
            explainer = get_explainer(method, **hp)
            torch.manual_seed(opt["seed"])
            t0 = time.perf_counter()
            fit_kwargs = {}
            if explainer.requires_fit:
                if train is None:
                    raise InputError(
                        f"{method} must be fit on the run's training split, which is unavailable"
                    )
                fit_kwargs = {
                    "epochs": opt["fit_epochs"] if opt["fit_epochs"] is not None else fit_epochs,
                    "max_batches": opt["fit_max_batches"],
                }
                train_loader = DataLoader(
                    train,
                    batch_size=opt["batch_size"],
                    shuffle=True,
                    generator=torch.Generator().manual_seed(opt["seed"]),
                )
                explainer.fit(model, train_loader, **fit_kwargs)
            t_fit = time.perf_counter() - t0
            t0 = time.perf_counter()
            scores, labels, batch, y, logits = _explain_all(explainer, model, loader, device)
            t_explain = time.perf_counter() - t0
            pm = prediction_metrics(logits, y)
            row: dict[str, Any] = {
                "method": method,
                "backbone": backbone,
                "dataset": kind,
                "data": Path(meta["path"]).name,
                "run": run.name,
                "options": ";".join(f"{k}={v}" for k, v in sorted(explainer.options().items())),
                "n_test": len(test),
                "pred_auc": pm["auc"],
                "pred_acc": pm["acc"],
                "interp_auc": interpretation_roc_auc(scores, labels, batch, y),
                "interp_auc_per_sample": per_sample_interpretation_auc(scores, labels, batch, y),
            }
            for k, v in precision_at_k(scores, labels, batch, y, ks).items():
                row[f"prec@{k}"] = v
            row["fid_plus"], row["fid_minus"] = _fidelity_all(model, loader, scores, ks[0], device)
            if opt["robustness"]:
                row.update(_robustness(explainer, model, rob_data, kind, backbone, meta, opt))
            if opt["sanity"]:
                row.update(_sanity(explainer, model, rob_data, opt, train, fit_kwargs))
            row["fit_s"] = t_fit
            row["explain_ms_per_sample"] = 1000 * t_explain / max(len(test), 1)
            rows.append(row)
            log.info(
                "%s %s/%s: interp AUC %.3f, prec@%d %.3f (%.1f s)",
                run.name,
                method,
                backbone,
                row["interp_auc"],
                ks[0],
                row[f"prec@{ks[0]}"],
                t_fit + t_explain,
            )
            keep = y[batch] > 0.5
            curves.setdefault((kind, backbone), []).append(
                (f"{method} ({run.name})", labels[keep].numpy(), scores[keep].numpy())
            )
    if not rows:
        raise ConfigError(
            f"none of the methods {', '.join(requested or [])} applies to these runs: post-hoc "
            "methods explain plain runs, lri_bernoulli / lri_gaussian need runs of that method"
        )
    _write_report(out_dir, rows, curves)
    return rows


def _robustness(explainer, model, data, kind, backbone, meta, opt) -> dict[str, float]:
    from hepx.explain.robustness import default_groups, explanation_robustness

    out: dict[str, float] = {}
    for group in default_groups(kind, backbone, int(meta.get("pos_dim", data.pos.shape[1]))):
        r = explanation_robustness(
            explainer, model, data, group, n_draws=opt["robustness_draws"], seed=opt["seed"]
        )
        kind_ = "equiv" if group.equivariant else "inv"
        pre = f"{kind_}_{group.name}"
        out[f"{pre}_cos"] = float(
            r[f"{'equivariance' if group.equivariant else 'invariance'}_cos"].median()
        )
        out[f"{pre}_spearman"] = float(
            r[f"{'equivariance' if group.equivariant else 'invariance'}_spearman"].median()
        )
        out[f"model_inv_{group.name}_cos"] = r["model_cos"]
    return out


def _sanity(explainer, model, data, opt, train, fit_kwargs) -> dict[str, float]:
    from hepx.explain.sanity import model_perturbation, model_randomisation

    refit_loader = None
    if explainer.requires_fit and train is not None:
        refit_loader = DataLoader(
            train,
            batch_size=opt["batch_size"],
            shuffle=True,
            generator=torch.Generator().manual_seed(opt["seed"]),
        )
    rnd = model_randomisation(
        copy.deepcopy(explainer),
        model,
        data,
        mode="full",
        seed=opt["seed"],
        fit_loader=refit_loader,
        fit_kwargs=fit_kwargs,
    )
    per = model_perturbation(explainer, model, data, seed=opt["seed"])
    return {
        "sanity_random_spearman": rnd["spearman"],
        "sanity_perturb_spearman": per["spearman"],
        "sanity_perturb_noise": per["noise"],
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _write_report(out_dir, rows: list[dict[str, Any]], curves) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_dir(out_dir) as tmp:
        with open(tmp / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        clean = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in rows
        ]
        (tmp / "results.json").write_text(json.dumps(clean, indent=1) + "\n")
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
        (tmp / "results.md").write_text(
            "# hepx evaluate\n\nMedians over samples for the robustness columns; "
            "interpretation metrics on the positive test samples.\n\n" + "\n".join(lines) + "\n"
        )
        for (kind, backbone), items in curves.items():
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            for label, lab, sc in items:
                if lab.any() and not lab.all():
                    fpr, tpr, _ = roc_curve(lab > 0, sc)
                    ax.plot(fpr, tpr, label=label)
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
            ax.set_xlabel("false positive rate (points)")
            ax.set_ylabel("true positive rate (points)")
            ax.set_title(f"{kind} / {backbone}: point-score ROC")
            ax.legend(fontsize=6)
            fig.tight_layout()
            fig.savefig(tmp / f"roc_{kind}_{backbone}.png", dpi=120)
            plt.close(fig)


# --------------------------------------------------------------------------- CLI


def _cmd_evaluate(args: argparse.Namespace) -> None:
    methods = None
    if args.methods:
        methods = [m.strip() for item in args.methods for m in item.split(",") if m.strip()]
    opts = {
        "max_samples": args.max_samples,
        "batch_size": args.batch_size,
        "robustness_samples": args.robustness_samples,
        "robustness_draws": args.draws,
        "sanity": not args.no_sanity,
        "robustness": not args.no_robustness,
        "bernmask_iterations": args.bernmask_iterations,
        "fit_epochs": args.fit_epochs,
        "fit_max_batches": args.fit_max_batches,
        "ig_steps": args.ig_steps,
        "ig_baseline": args.ig_baseline,
        "seed": args.seed,
        "data": args.data,
    }
    t0 = time.perf_counter()
    rows = evaluate(args.runs, args.out, methods=methods, device=args.device, **opts)
    log.info(
        "evaluated %d rows in %.0f s -> %s/results.{md,csv}",
        len(rows),
        time.perf_counter() - t0,
        args.out,
    )


def register_cli(sub) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``hepx``'s sub-parsers."""
    p = sub.add_parser(
        "evaluate", help="explain trained runs and write the results table (md/csv) and ROC plots"
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods (space or comma separated); default: all applicable "
        "(post-hoc for plain runs, the run's own scores for LRI runs)",
    )
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="evaluate on this dataset instead of the run's test split",
    )
    p.add_argument("--max-samples", type=int, default=None, help="test samples to explain")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--robustness-samples", type=int, default=32)
    p.add_argument("--draws", type=int, default=50, help="Monte Carlo group draws (default 50)")
    p.add_argument("--no-robustness", action="store_true")
    p.add_argument("--no-sanity", action="store_true")
    p.add_argument("--bernmask-iterations", type=int, default=None, help="default 500")
    p.add_argument(
        "--fit-epochs", type=int, default=None, help="BernMask-P/PointMask epochs (default 100/50)"
    )
    p.add_argument("--fit-max-batches", type=int, default=None)
    p.add_argument("--ig-steps", type=int, default=50)
    from hepx.explain.gradients import BASELINES

    p.add_argument(
        "--ig-baseline",
        choices=BASELINES,
        default="origin",
        help="IG / GGIG path baseline: the origin (beam spot, eta = 0) or each sample's centroid",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_evaluate)
    return p


def _standalone(argv: Sequence[str] | None = None) -> int:
    """``python -m hepx.evaluate RUN_DIR... --out REPORT`` (same behaviour as ``hepx evaluate``)."""
    import sys

    from hepx.errors import HepxError

    parser = argparse.ArgumentParser(prog="hepx")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="hepx: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except HepxError as err:
        print(f"hepx: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(_standalone())
