"""``hepx evaluate RUN_DIR... --out REPORT_DIR``: the evaluation table.

For every run directory (written by ``hepx train``) and every applicable method:

* plain runs (``method: plain``) are explained by the post-hoc methods (frozen classifier);
* LRI runs by their own scores (``lri_bernoulli`` / ``lri_gaussian``).

One row per (method, backbone, dataset, run): prediction ROC AUC / accuracy on the test split,
interpretation ROC AUC (pooled over the points of the positive samples, and the per-sample
mean), precision@k, fidelity (fid+ / fid- of the top-k points, k = first precision k),
explanation robustness (per group: median over samples of the cosine and Spearman
similarities, with the model's own invariance per sample), sanity checks (the cascading model
randomisation curve, one Spearman per re-initialised block, and the model perturbation
Spearman with a flag when its accuracy tolerance was not met) and wall times (fit, explain per
sample).

With ``ensemble=N`` (``hepx evaluate --ensemble N``) the first ``N`` plain runs (by directory
name) of each dataset kind and backbone also form an ensemble, and every post-hoc method gets
one more row, ``<method>+ens<N>`` (:func:`_evaluate_ensemble`).

The report (:mod:`hepx.evaluation.report`): ``results.csv``, ``results.md``, ``results.json``
and ``roc_<dataset>_<backbone>.png``, written atomically.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from hepx.config.evaluate import EVALUATE_SCHEMA
from hepx.config.schema import validate
from hepx.errors import ConfigError, InputError
from hepx.explain.registry import (
    METHODS,
    POST_HOC,
    available_methods,
    default_hparams,
    get_explainer,
)
from hepx.inference import Predictions, predict
from hepx.progress import progress_bar
from hepx.run import TrainedRun

log = logging.getLogger("hepx")

__all__ = ["OPTIONS", "evaluate"]

#: The options of :func:`evaluate` (and of ``hepx evaluate``), with their defaults.
OPTIONS = EVALUATE_SCHEMA


@dataclass
class _Run:
    """A run opened for evaluation: its model and the data it is evaluated on."""

    directory: Path
    model: torch.nn.Module
    config: Mapping[str, Any]
    test: Any
    train: Any
    meta: Mapping[str, Any]
    valid: Any = None

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "?")


def open_run(run_dir: str | os.PathLike, data: str | os.PathLike | None = None) -> _Run:
    """A run with its test split, or all of ``data`` (another dataset: distribution shift),
    and its training and validation splits when available (for explainers that are fit).

    Raises:
        CheckpointError: no run / checkpoint there, or a model that does not fit the data.
        InputError: the dataset is missing or of another kind than the run's.
    """
    run = TrainedRun.open(run_dir)
    splits = run.splits() if data is None or run.dataset_path.exists() else {}
    if data is None:
        test, meta = splits["test"], splits["test"].meta
    else:
        test = run.dataset(data)  # a foreign (e.g. shifted) dataset: all of it is test data
        meta = test.meta
    train, valid = splits.get("train"), splits.get("val")
    return _Run(run.directory, run.model(), run.config, test, train, meta, valid)


def evaluate(
    run_dirs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    methods: Sequence[str] | None = None,
    device: str = "cpu",
    progress: bool | None = None,
    overwrite: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Evaluate ``methods`` (default: all applicable) on the runs; write the report.

    Args:
        run_dirs: ``hepx train`` run directories.
        out_dir: the report directory.
        methods: method names (:func:`hepx.explain.available_methods`); default: the post-hoc
            methods for plain runs, the run's own scores for LRI runs.
        device: ``"cpu"`` or ``"cuda"``.
        progress: progress bars per method and run and over the batches (``None``: on a
            terminal or in a notebook).
        overwrite: replace whatever is at ``out_dir``; without it only a report hepx wrote
            may be replaced.
        **options: see :data:`OPTIONS`. ``ensemble=N`` adds the ensemble rows
            (:func:`_evaluate_ensemble`); it needs at least ``N`` plain runs of every dataset
            kind and backbone among the plain runs, all with the same test data.

    Returns:
        The rows of the table.

    Raises:
        ConfigError: unknown methods, none that applies, or runs that cannot form the
            requested ensembles (too few, or evaluated on different test data).

    Example
    -------
    >>> rows = evaluate(["runs/plain", "runs/lri"], "report", max_samples=200)  # doctest: +SKIP
    """
    from hepx.atomic import check_output
    from hepx.device import checked_device
    from hepx.evaluation.report import write_report

    checked_device(device)
    opt = validate(OPTIONS, options, where="evaluate options")
    check_output(
        out_dir,
        overwrite=overwrite,
        is_ours=lambda p: (p / "results.json").exists(),
        what="report directory",
    )
    requested = _check_methods(methods)
    if not run_dirs:
        raise InputError("no run directories given")
    runs = [open_run(r, opt["data"]) for r in run_dirs]  # validate all first
    ensembles = _ensembles(runs, opt) if opt["ensemble"] is not None else []
    rows: list[dict[str, Any]] = []
    curves: dict[tuple[str, str], list[tuple[str, np.ndarray, np.ndarray]]] = {}
    jobs = [
        (run, m) for run in runs for m in _methods_for(run.config["model"]["method"], requested)
    ]
    for run in runs:
        if not any(r is run for r, _ in jobs):
            log.warning("%s: none of the requested methods applies", run.directory)
    checks: dict[int, tuple[Any, Any]] = {}
    for run, method in progress_bar(jobs, progress=progress, desc="evaluate", unit="method"):
        test, check_batch = _cached_test(checks, run, opt, device)
        row, pred = _evaluate_method(run, test, check_batch, method, opt, device, progress)
        _add_row(rows, curves, run, row, pred)
    for members, method in [(e, m) for e in ensembles for m in _methods_for("plain", requested)]:
        test, check_batch = _cached_test(checks, members[0], opt, device)
        row, pred = _evaluate_ensemble(members, test, check_batch, method, opt, device, progress)
        _add_row(rows, curves, members[0], row, pred)
    if not rows:
        raise ConfigError(
            f"none of the methods {', '.join(requested or [])} applies to these runs: post-hoc "
            "methods explain plain runs; lri_*, gmt_* and pointmask need runs of that method"
        )
    write_report(out_dir, rows, curves)
    return rows


def _add_row(rows: list, curves: dict, run: _Run, row: dict[str, Any], pred: Predictions) -> None:
    """Append a row, and the point scores of its positive samples to its ROC plot."""
    rows.append(row)
    keep = pred.y[pred.batch] > 0.5
    curves.setdefault((run.kind, row["backbone"]), []).append(
        (f"{row['method']} ({row['run']})", pred.node_label[keep], pred.scores[keep])
    )


def _cached_test(checks: dict, run: _Run, opt: Mapping[str, Any], device: str):
    """:func:`_test_and_check_batch` of ``run``, computed once (``checks``: by run id)."""
    if id(run) not in checks:
        checks[id(run)] = _test_and_check_batch(run, opt, device)
    return checks[id(run)]


def _test_and_check_batch(run: _Run, opt: Mapping[str, Any], device: str):
    """The run's test samples (``max_samples``) and the batch of the robustness and sanity
    checks (its first ``robustness_samples``)."""
    run.model.to(device)
    test = run.test if opt["max_samples"] is None else run.test[: opt["max_samples"]]
    checks = DataLoader(test, batch_size=max(1, opt["robustness_samples"]))
    return test, next(iter(checks)).to(device)  # the samples of the checks


def _check_methods(methods: Sequence[str] | None) -> list[str] | None:
    if methods is None:
        return None
    known = available_methods()
    for m in methods:
        if m not in known:
            raise ConfigError(f"unknown method {m!r}; known methods: {', '.join(known)}")
    return list(methods)


def _methods_for(run_method: str, requested: Sequence[str] | None) -> list[str]:
    cands = list(POST_HOC) if run_method == "plain" else [run_method]
    return [m for m in cands if requested is None or m in requested]


def _explainer(method: str, run: _Run, opt: Mapping[str, Any]):
    """The method with the reference options for the run's kind and backbone, and the
    arguments of its fit (``None`` when it is not fit)."""
    hp = default_hparams(method, run.kind, run.config["model"]["backbone"])
    fit_epochs = hp.pop("epochs", None)
    if method == "bernmask" and opt["bernmask_iterations"] is not None:
        hp["iterations"] = opt["bernmask_iterations"]
    if method == "ig":
        hp["n_steps"] = opt["ig_steps"]
    if method in ("ig", "ggig"):
        hp["baseline"] = opt["ig_baseline"]
    if method in ("bernmask", "bernmask_p", "pointmask_posthoc"):
        hp["seed"] = opt["seed"]
    explainer = get_explainer(method, **hp)
    if not explainer.requires_fit:
        return explainer, None
    epochs = opt["fit_epochs"] if opt["fit_epochs"] is not None else fit_epochs
    fit = {"epochs": epochs, "max_batches": opt["fit_max_batches"]}
    if method == "bernmask_p" and run.valid is not None:  # the reference's epoch selection
        fit["valid_loader"] = DataLoader(run.valid, batch_size=opt["batch_size"])
    return explainer, fit


def fit_batch_size(method: str, run_config: Mapping[str, Any], opt: Mapping[str, Any]) -> int:
    """Samples per batch of ``method``'s fit: ``fit_batch_size`` if set, else the run's
    training batch size for an algorithm with ``fit_on_run_batch`` (BernMask-P: the reference
    trains its extractor with the dataset's batch size, which sets its steps per epoch), else
    ``batch_size``."""
    if opt["fit_batch_size"] is not None:
        return int(opt["fit_batch_size"])
    if METHODS[method].fit_on_run_batch:
        return int(run_config["train"]["batch_size"])
    return int(opt["batch_size"])


def _train_loader(run: _Run, opt: Mapping[str, Any], method: str) -> DataLoader:
    if run.train is None:
        raise InputError(f"{method} must be fit on the run's training split, which is unavailable")
    gen = torch.Generator().manual_seed(opt["seed"])
    size = fit_batch_size(method, run.config, opt)
    return DataLoader(run.train, batch_size=size, shuffle=True, generator=gen)


def _evaluate_method(
    run: _Run,
    test,
    check_batch,
    method: str,
    opt: Mapping[str, Any],
    device: str,
    progress: bool | None = None,
) -> tuple[dict[str, Any], Predictions]:
    """One row of the table: fit (if needed), explain the test split, score the explanation."""
    explainer, fit_kwargs = _explainer(method, run, opt)
    ks = list(run.config["eval"]["precision_k"])
    loader = DataLoader(test, batch_size=opt["batch_size"])
    torch.manual_seed(opt["seed"])
    t0 = time.perf_counter()
    if fit_kwargs is not None:
        explainer.fit(run.model, _train_loader(run, opt, method), **fit_kwargs)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict(
        run.model, loader, device=device, explainer=explainer, progress=progress, desc=method
    )
    t_explain = time.perf_counter() - t0
    row = _row_head(method, run, run.directory.name, explainer, len(test))
    row.update(_scores(run.model, loader, pred, pred.logits, ks, device))
    if opt["robustness"]:
        row.update(_robustness(explainer, run, check_batch, opt))
    if opt["sanity"]:
        row.update(_sanity(explainer, run, check_batch, opt, fit_kwargs))
    row["fit_s"] = t_fit
    if fit_kwargs is not None:
        row["fit_batch_size"] = fit_batch_size(method, run.config, opt)
    row["explain_ms_per_sample"] = 1000 * t_explain / max(len(test), 1)
    _log_row(row, ks[0], t_fit + t_explain)
    return row, pred


def _row_head(method: str, run: _Run, name: str, explainer, n_test: int) -> dict[str, Any]:
    """The identifying columns of a row (``name``: the run column)."""
    return {
        "method": method,
        "backbone": run.config["model"]["backbone"],
        "dataset": run.kind,
        "data": Path(run.meta["path"]).name,
        "run": name,
        "options": ";".join(f"{k}={v}" for k, v in sorted(explainer.options().items())),
        "n_test": n_test,
    }


def _scores(model, loader, pred: Predictions, logits, ks, device) -> dict[str, Any]:
    """Prediction metrics of ``logits`` ``[S]``; interpretation metrics and fidelity (of
    ``model``) of the explanation ``pred.scores``."""
    from hepx.explain.metric.groundtruth import (
        interpretation_roc_auc,
        per_sample_interpretation_auc,
        precision_at_k,
        prediction_metrics,
    )

    pm = prediction_metrics(logits, pred.y)
    scores, labels, batch, y = pred.scores, pred.node_label, pred.batch, pred.y
    out: dict[str, Any] = {
        "pred_auc": pm["auc"],
        "pred_acc": pm["acc"],
        "interp_auc": interpretation_roc_auc(scores, labels, batch, y),
        "interp_auc_per_sample": per_sample_interpretation_auc(scores, labels, batch, y),
    }
    for k, v in precision_at_k(scores, labels, batch, y, ks).items():
        out[f"prec@{k}"] = v
    out["fid_plus"], out["fid_minus"] = _fidelity(model, loader, scores, ks[0], device)
    return out


def _log_row(row: Mapping[str, Any], k: int, seconds: float) -> None:
    log.info(
        "%s %s/%s: interp AUC %.3f, prec@%d %.3f (%.1f s)",
        row["run"],
        row["method"],
        row["backbone"],
        row["interp_auc"],
        k,
        row[f"prec@{k}"],
        seconds,
    )


# --------------------------------------------------------------------------- ensembles


def _test_key(run: _Run, opt: Mapping[str, Any]) -> tuple:
    """What fixes a run's test samples: the dataset's content (fingerprint, else its path) and
    the split (fractions, seed); with ``data`` all of that one dataset."""
    if opt["data"] is not None:
        return (str(Path(opt["data"]).resolve()),)
    d = run.config["dataset"]
    content = run.meta.get("fingerprint") or str(Path(run.meta["path"]).resolve())
    return (content, tuple(d.get("split") or ()), d.get("split_seed"))


def _ensembles(runs: Sequence[_Run], opt: Mapping[str, Any]) -> list[list[_Run]]:
    """The ensembles of ``ensemble=N``: per (dataset kind, backbone) of the plain runs, the
    first ``N`` by directory name.

    Raises:
        ConfigError: a group of fewer than ``N`` plain runs (or no plain run), or a group whose
            runs are not evaluated on the same test data.
    """
    n = opt["ensemble"]
    groups: dict[tuple[str, str], list[_Run]] = {}
    for run in runs:
        if run.config["model"]["method"] == "plain":
            groups.setdefault((run.kind, run.config["model"]["backbone"]), []).append(run)
    if not groups:
        raise ConfigError(f"ensemble={n}: an ensemble is made of plain runs; none was given")
    out = []
    for (kind, backbone), group in groups.items():
        group.sort(key=lambda r: (r.directory.name, str(r.directory)))
        names = ", ".join(str(r.directory) for r in group)
        if len({_test_key(r, opt) for r in group}) > 1:
            raise ConfigError(
                f"ensemble={n}: the plain {kind}/{backbone} runs {names} are not evaluated on the "
                "same test data (another dataset fingerprint, split or split seed); an ensemble "
                "needs runs of one dataset and split"
            )
        if len(group) < n:
            raise ConfigError(
                f"ensemble={n}: only {len(group)} plain {kind}/{backbone} run(s) ({names}); "
                f"an ensemble of {n} needs at least {n}"
            )
        out.append(group[:n])
    return out


def _evaluate_ensemble(
    members: Sequence[_Run],
    test,
    check_batch,
    method: str,
    opt: Mapping[str, Any],
    device: str,
    progress: bool | None = None,
) -> tuple[dict[str, Any], Predictions]:
    """The row ``<method>+ens<N>`` of an ensemble of plain runs (same test data).

    The explanation is :class:`~hepx.explain.algorithm.ensemble.EnsembleExplainer` (the mean of
    the members' within-sample rank-normalised scores; fitted methods fit once per member, each
    on a freshly seeded loader of its training split, as its own row's fit). Prediction
    metrics are those of the members' mean logit; interpretation ROC AUC, per-sample AUC and
    precision@k score the ensemble's explanation; fidelity masks the first member (the
    ensemble has no single model to mask). The robustness columns are the ensemble
    explanation's (the model-invariance columns the first member's); the sanity checks are
    skipped (they would have to randomise every member), so those columns stay empty.
    """
    from hepx.explain.algorithm.ensemble import EnsembleExplainer

    first = members[0]
    for m in members:
        m.model.to(device)
    base, fit_kwargs = _explainer(method, first, opt)
    ens = EnsembleExplainer(base, [m.model for m in members])
    ks = list(first.config["eval"]["precision_k"])
    loader = DataLoader(test, batch_size=opt["batch_size"])
    torch.manual_seed(opt["seed"])
    t0 = time.perf_counter()
    if fit_kwargs is not None:
        ens.fit(first.model, [_train_loader(m, opt, method) for m in members], **fit_kwargs)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict(
        first.model, loader, device=device, explainer=ens, progress=progress, desc=ens.name
    )
    t_explain = time.perf_counter() - t0
    logits = _mean_logits(members, loader, pred, device)
    name = "+".join(m.directory.name for m in members)
    row = _row_head(ens.name, first, name, ens, len(test))
    row.update(_scores(first.model, loader, pred, logits, ks, device))
    if opt["robustness"]:
        row.update(_robustness(ens, first, check_batch, opt))
    row["fit_s"] = t_fit
    if fit_kwargs is not None:
        row["fit_batch_size"] = fit_batch_size(method, first.config, opt)
    row["explain_ms_per_sample"] = 1000 * t_explain / max(len(test), 1)
    _log_row(row, ks[0], t_fit + t_explain)
    return row, pred


def _mean_logits(members: Sequence[_Run], loader, pred: Predictions, device: str) -> np.ndarray:
    """The members' mean logit ``[S]`` on ``loader`` (``pred``: the first member's
    predictions on it)."""
    total = pred.logits.astype(np.float64)
    for m in members[1:]:
        total = total + predict(m.model, loader, device=device).logits
    return (total / len(members)).astype(np.float32)


def _fidelity(model, loader, scores: np.ndarray, k: int, device) -> tuple[float, float]:
    """Mean fid+ and fid- over the positive samples."""
    from hepx.explain.metric.fidelity import fidelity

    scores_t = torch.from_numpy(scores)
    fp, fm, ys = [], [], []
    lo = 0
    for data in loader:
        data = data.to(device)
        n = data.num_nodes
        f = fidelity(model, data, scores_t[lo : lo + n].to(device), k)
        lo += n
        fp.append(f["fid_plus"].cpu())
        fm.append(f["fid_minus"].cpu())
        ys.append(data.y.view(-1).cpu())
    y = torch.cat(ys) > 0.5
    fp, fm = torch.cat(fp)[y], torch.cat(fm)[y]
    nan = float("nan")
    return (float(fp.mean()) if len(fp) else nan, float(fm.mean()) if len(fm) else nan)


def _robustness(explainer, run: _Run, data, opt: Mapping[str, Any]) -> dict[str, float]:
    """Per group of the run's kind that the model is built to respect
    (:meth:`~hepx.kinds.base.DatasetKind.robustness_groups`: ``E(3)`` only for an
    ``E(3)``-invariant EGNN, not for beam-frame models): the medians over samples of the
    explanation's cosine and Spearman scores (``inv_<group>_*`` / ``equiv_permutation_*``),
    and the model's own invariance per sample on the same draws: ``model_inv_<group>_absdiff``
    (median of the mean ``|f(g x) - f(x)|``) and ``model_inv_<group>_agree`` (mean over samples
    of the fraction of draws with the predicted class unchanged)."""
    from hepx.explain.metric.robustness import explanation_robustness
    from hepx.kinds import KINDS

    kind = KINDS.get(run.kind, KINDS["generic"])
    pos_dim = int(run.meta.get("pos_dim", data.pos.shape[1]))
    out: dict[str, float] = {}
    for group in kind.robustness_groups(run.model, pos_dim):
        r = explanation_robustness(
            explainer, run.model, data, group, n_draws=opt["robustness_draws"], seed=opt["seed"]
        )
        score = "equivariance" if group.equivariant else "invariance"
        pre = f"{'equiv' if group.equivariant else 'inv'}_{group.name}"
        out[f"{pre}_cos"] = float(r[f"{score}_cos"].median())
        out[f"{pre}_spearman"] = float(r[f"{score}_spearman"].median())
        m = r["model_summary"]
        out[f"model_inv_{group.name}_absdiff"] = m["abs_diff"]["median"]
        out[f"model_inv_{group.name}_agree"] = m["class_agreement"]["mean"]
    return out


def _sanity(explainer, run: _Run, data, opt, fit_kwargs) -> dict[str, Any]:
    """Model randomisation (cascading, Adebayo et al.) and model perturbation (Rahman et al.).

    Columns: ``sanity_random_spearman`` (all blocks re-initialised), the cascading curve
    ``sanity_cascade_<block>_spearman`` for ``head``, ``conv<L>``, ..., ``conv1``, ``encoder``
    (cumulative: the last equals ``sanity_random_spearman``), ``sanity_perturb_spearman``,
    ``sanity_perturb_noise`` (mean noise scale over the draws), ``sanity_perturb_tol_met``
    (every draw kept the accuracy within the tolerance) and ``sanity_perturb_missed`` (draws
    that did not; their similarities are still in ``sanity_perturb_spearman``)."""
    from hepx.explain.metric.sanity import model_perturbation, model_randomisation

    refit = None
    if explainer.requires_fit and run.train is not None:
        refit = _train_loader(run, opt, explainer.name)
    rnd = model_randomisation(
        copy.deepcopy(explainer),
        run.model,
        data,
        mode="cascading",
        seed=opt["seed"],
        fit_loader=refit,
        fit_kwargs=fit_kwargs or {},
    )
    per = model_perturbation(explainer, run.model, data, seed=opt["seed"])
    if not per["tolerance_met"]:
        log.warning(
            "%s %s: model perturbation missed the accuracy tolerance in %d of %d draws",
            run.directory.name,
            explainer.name,
            per["n_missed"],
            len(per["draws"]),
        )
    return {
        "sanity_random_spearman": rnd["spearman"],
        **{f"sanity_cascade_{b}_spearman": v for b, v in rnd["curve"].items()},
        "sanity_perturb_spearman": per["spearman"],
        "sanity_perturb_noise": per["noise"],
        "sanity_perturb_tol_met": per["tolerance_met"],
        "sanity_perturb_missed": per["n_missed"],
    }
