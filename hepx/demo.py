"""``hepx demo``: the whole chain on built-in defaults, end to end, in minutes on a laptop CPU.

For ActsTrack (2 T) and Tau3Mu: simulate a training sample and an independent held-out sample
(another seed), convert the training sample, train the shipped LRI-Bernoulli DGCNN config with
a shortened schedule (:func:`hepx.config.shorten_schedule`), score the held-out ROOT files
(:func:`hepx.scoring.score_files`) and plot them. Everything goes into one output directory;
the last log line says where the plots and ``summary.json`` are.

A finished run in the output directory is reused only when it was trained with the same
settings on the same data (the dataset's content fingerprint, :meth:`hepx.run.TrainedRun.
differences`), and the log says so; otherwise it is trained again. ``quick`` shrinks
everything to check that the chain runs; its numbers mean nothing and are not shown as
results.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from hepx.errors import InputError

log = logging.getLogger("hepx")

__all__ = ["CONFIGS", "SIZES", "demo_run_config", "run_demo"]

#: The shipped configs the demo trains, per dataset kind.
CONFIGS = {"actstrack": "actstrack/lri_bernoulli_dgcnn", "tau3mu": "tau3mu/lri_bernoulli_dgcnn"}

#: Per mode and kind: simulated training and held-out events, epochs, batch size. The
#: ActsTrack batch is smaller than the config's 128: with ~1000 training events that would be
#: 8 optimiser steps per epoch, and a demo trains few epochs.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "full": {
        "actstrack": {"events": 1500, "held_out": 500, "epochs": 8, "batch": 32},
        "tau3mu": {"events": 8000, "held_out": 2000, "epochs": 6, "batch": 256},
    },
    "quick": {
        "actstrack": {"events": 120, "held_out": 40, "epochs": 2, "batch": 32},
        "tau3mu": {"events": 1200, "held_out": 300, "epochs": 2, "batch": 128},
    },
}

#: Seed offset of the held-out samples (independent of the training sample's seed).
HELD_OUT_SEED = 1_000_003


def demo_run_config(kind: str, data: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """The shipped config of ``kind`` shortened to the demo's epochs, on ``data``.

    Example
    -------
    >>> cfg = demo_run_config("tau3mu", Path("data/tau3mu"))
    >>> cfg["model"]["backbone"], cfg["train"]["epochs"]
    ('dgcnn', 6)
    """
    from hepx.config import find_config, load_yaml, shorten_schedule

    size = SIZES["quick" if quick else "full"][kind]
    cfg = shorten_schedule(load_yaml(find_config(CONFIGS[kind])), size["epochs"])
    cfg["dataset"]["path"] = str(data)
    cfg["train"].update(seed=seed, batch_size=size["batch"])
    if quick:
        cfg["model"].update(hidden_channels=16, num_layers=2)
    return cfg


def _train_or_reuse(cfg: dict[str, Any], run: Path) -> tuple[dict[str, Any], bool]:
    """The run's test metrics and whether it was reused (same settings, same data)."""
    from hepx.config import resolve_run_config
    from hepx.data import read_manifest
    from hepx.run import RunLayout, TrainedRun
    from hepx.training import train

    layout = RunLayout(run)
    if run.exists():
        if not (layout.config.exists() and layout.checkpoints.is_dir()):
            raise InputError(f"{run} exists and is not a hepx run; choose another --out")
        if layout.test_metrics.exists():
            changed = TrainedRun.open(run).differences(
                resolve_run_config(cfg), read_manifest(cfg["dataset"]["path"])
            )
            if not changed:
                return TrainedRun.open(run).test_metrics(), True
            log.info("retraining %s: it was trained with another %s", run, "; ".join(changed))
        shutil.rmtree(run)
    return train(cfg, run), False


def _held_out_auc(scored: Path) -> tuple[int, float]:
    """Events and the pooled interpretation ROC AUC of the scored held-out sample."""
    import awkward as ak
    import numpy as np

    from hepx.post.physics import roc_auc
    from hepx.scoring import load_scored

    _, events = load_scored(scored)
    positive = events[events.label == 1]
    importance = ak.to_numpy(ak.flatten(positive.hits.importance))
    labels = ak.to_numpy(ak.flatten(positive.hits.node_label)) > 0
    return len(events), roc_auc(importance.astype(np.float64), labels)


def _one_kind(kind: str, out: Path, *, quick: bool, seed: int) -> dict[str, Any]:
    """Simulate, convert, train (or reuse), score the held-out sample and plot it."""
    from hepx.data import convert
    from hepx.kinds import get_kind
    from hepx.plot import load_events, make_plots
    from hepx.scoring import score_files

    size = SIZES["quick" if quick else "full"][kind]
    t0 = time.perf_counter()
    simulate = get_kind(kind).simulate
    # the demo owns its work directory: a second demo replaces its own files
    train_inputs = simulate(out / "sim" / kind, events=size["events"], seed=seed, overwrite=True)
    held_out = out / "sim" / f"{kind}_held_out"
    held_inputs = simulate(
        held_out, events=size["held_out"], seed=seed + HELD_OUT_SEED, overwrite=True
    )
    data = out / "data" / kind
    convert(kind, train_inputs, data)
    run = out / "runs" / f"{kind}_lri_bernoulli_dgcnn"
    metrics, reused = _train_or_reuse(demo_run_config(kind, data, quick=quick, seed=seed), run)
    log.info("%s: %s %s", kind, "reused the trained run" if reused else "trained", run)
    scored = out / "scored" / kind
    score_files(run, held_inputs, scored, overwrite=True, progress=False)
    plots = out / "plots" / kind
    if plots.exists():
        shutil.rmtree(plots)
    make_plots(load_events(scored), kinds="all", out=plots, overwrite=True)
    n_held, auc = _held_out_auc(scored)
    return {
        "run": str(run),
        "reused": reused,
        "test": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "held_out": {"events": n_held, "interp_auc": round(auc, 4), "scored": str(scored)},
        "plots": str(plots),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_demo(
    out: str | os.PathLike = "hepx-demo", *, quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary (also written to ``out/summary.json``).

    Example
    -------
    >>> summary = run_demo("hepx-demo")                                  # doctest: +SKIP
    >>> summary["actstrack"]["test"]["test_interp_auc"]                  # doctest: +SKIP
    """
    import torch

    out = Path(out)
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"quick": quick, "seed": seed, "threads": torch.get_num_threads()}
    for i, kind in enumerate(CONFIGS, start=1):
        summary[kind] = _one_kind(kind, out, quick=quick, seed=seed)
        log.info("[%d/%d] %s done in %.0f s", i, len(CONFIGS), kind, summary[kind]["seconds"])
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    _report(summary, quick)
    log.info("plots in %s, summary in %s (%.0f s)", out / "plots", path, summary["seconds"])
    return summary


def _report(summary: dict[str, Any], quick: bool) -> None:
    if quick:
        log.info("quick mode checks that the chain runs on tiny samples; its numbers mean nothing")
        return
    for kind in CONFIGS:
        test, held = summary[kind]["test"], summary[kind]["held_out"]
        log.info(
            "%s: test prediction AUC %.3f, interpretation ROC AUC %.3f; held-out sample "
            "(%d events, never trained on): interpretation ROC AUC %.3f",
            kind,
            test["test_pred_auc"],
            test.get("test_interp_auc", float("nan")),
            held["events"],
            held["interp_auc"],
        )
