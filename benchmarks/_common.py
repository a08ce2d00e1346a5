"""Shared helpers of the benchmark scripts: cached simulated datasets and shortened runs."""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hepx import sim
from hepx.config import (
    apply_overrides,
    load_yaml,
    resolve_run_config,
    shipped_config_dir,
    shorten_schedule,
)
from hepx.data import convert
from hepx.run import RunLayout
from hepx.training import config_diff, train

WORKDIR = Path(tempfile.gettempdir()) / "hepx-bench"


def simulated_dataset(
    kind: str, events: int, *, seed: int = 1, bfield: float = 2.0, workdir: Path = WORKDIR
) -> Path:
    """Simulate and convert once; later calls reuse the cached dataset directory.

    ``kind``: ``actstrack``, ``tau3mu`` or ``synmol`` (``events``: its number of molecules,
    converted with the generic reader, as the shipped SynMol configs read it). A finished
    SynMol simulation (its manifest is written last) is reused if only the conversion is
    missing: building the molecules is the slow part (the 8,663 of the benchmark took 19
    minutes on one core beside other jobs).
    """
    tag = f"{kind}_{events}_s{seed}" + (f"_{bfield:g}T" if kind == "actstrack" else "")
    data = workdir / "data" / tag
    if (data / "manifest.json").exists():
        return data
    raw = workdir / "sim" / tag
    if kind == "actstrack":
        sim.simulate_actstrack(raw, events=events, bfield=bfield, seed=seed, overwrite=True)
        convert("actstrack", [raw], data)
    elif kind == "synmol":
        from hepx.sim.synmol import FILE_NAME, MANIFEST_NAME

        if not (raw / MANIFEST_NAME).exists():
            sim.simulate_synmol(raw, samples=events, seed=seed, progress=False, overwrite=True)
        convert("generic", [raw / FILE_NAME], data)
    elif kind == "tau3mu":
        sim.simulate_tau3mu(raw, events=events, seed=seed, overwrite=True)
        convert("tau3mu", [raw / "ntuple.root"], data)
    else:
        raise ValueError(f"no simulation of {kind!r}; expected actstrack, tau3mu or synmol")
    return data


CONFIGS = shipped_config_dir()
#: Simulated samples per dataset; SynMol: the paper's size (Table 1, 8,663 molecules).
EVENTS = {"actstrack": 3000, "tau3mu": 20000, "synmol": 8663}

# Training epochs of the benchmark runs per dataset and method: the reference schedule where one
# run fits the 15-minute budget on 2 CPU cores (Tau3Mu: all 100 epochs), otherwise as much of it
# as fits (ActsTrack: 300 in the reference). ActsTrack LRI-Gaussian rebuilds a k=10 graph on the
# noised hits in every step and keeps 25. Why not shorter: 25 / 20 epochs left LRI
# under-trained (README, "Training quality").
BENCH_EPOCHS = {
    "actstrack": {
        "plain": 100,
        "lri_bernoulli": 100,
        "lri_gaussian": 25,
        "gmt_lin": 100,
        "gmt_sam": 100,
        "pointmask": 100,
    },
    "tau3mu": {
        "plain": 100,
        "lri_bernoulli": 100,
        "lri_gaussian": 100,
        "gmt_lin": 100,
        "gmt_sam": 100,
        "pointmask": 100,
    },
    # SynMol, 8,663 molecules (300 reference epochs): as many epochs as fit the run budget
    # (epoch times on the results page, "SynMol"). PointMask, trained from scratch, as the
    # plain model; GMT as LRI-Bernoulli (GMT-sam draws 20 hard masks per step there).
    "synmol": {
        "plain": 50,
        "lri_bernoulli": 25,
        "lri_gaussian": 25,
        "pointmask": 50,
        "gmt_lin": 25,
        "gmt_sam": 25,
    },
}


def bench_epochs(kind: str, method: str, override: int | None = None) -> int:
    """``override`` if given, else :data:`BENCH_EPOCHS` for ``kind`` and ``method``."""
    if kind not in BENCH_EPOCHS or method not in BENCH_EPOCHS[kind]:
        known = ", ".join(f"{k}:{m}" for k in BENCH_EPOCHS for m in BENCH_EPOCHS[k])
        raise ValueError(f"no benchmark schedule for {kind}:{method}; expected one of {known}")
    return BENCH_EPOCHS[kind][method] if override is None else override


def training_minutes(run: Path) -> float:
    """Training time of ``run`` in minutes: the sum of the per-epoch seconds of its
    ``metrics.csv`` (training, BatchNorm recalibration and validation of every epoch)."""
    with open(RunLayout(run).metrics_csv, newline="") as fh:
        return sum(float(row["seconds"]) for row in csv.DictReader(fh)) / 60


def shortened_config(
    kind: str, method: str, backbone: str, *, epochs: int, seed: int, data: Path
) -> dict:
    """The shipped config ``<kind>/<method>_<backbone>`` shortened to ``epochs``
    (:func:`hepx.config.shorten_schedule`), with ``train.seed`` and ``dataset.path`` set.

    The warm-up cap matters for ActsTrack LRI-Gaussian (200 of 300 reference epochs are
    warm-up): kept at two thirds, a 25-epoch run had too few noised epochs for the validation
    AUC to recover from the switch to noised inputs, while the plain classifier converges in
    about 10 (docs: results).
    """
    cfg = shorten_schedule(load_yaml(CONFIGS / kind / f"{method}_{backbone}.yaml"), epochs)
    cfg["train"]["seed"] = seed
    cfg["dataset"]["path"] = str(data)
    return cfg


def train_run(
    kind: str,
    method: str,
    backbone: str,
    *,
    epochs: int,
    seed: int = 0,
    runs_dir: Path = WORKDIR / "runs",
    data: Path | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    label: str | None = None,
) -> Path:
    """Train (or reuse, or resume) one shortened reference run; returns its run directory.

    Runs are named ``<kind>_<method>_<backbone>_s<seed>_e<epochs>`` so that the quality
    benchmark, the paper table and the distribution-shift study share them; ``label`` stands
    for ``<method>`` in the name of a variant of the method's config (``overrides``), e.g.
    ``lri_bernoulli_maskpool``. A finished run is reused only if it was trained with the same
    model and train settings as the current config (with ``overrides``); otherwise
    :class:`StaleRunError` names the differences, since a run trained under an older config
    would silently stand in for the current one.
    """
    data = simulated_dataset(kind, EVENTS[kind]) if data is None else data
    run = runs_dir / f"{kind}_{label or method}_{backbone}_s{seed}_e{epochs}"
    cfg = shortened_config(kind, method, backbone, epochs=epochs, seed=seed, data=data)
    cfg = apply_overrides(cfg, list(overrides))
    if RunLayout(run).test_metrics.exists():
        check_run_config(run, cfg)
    else:
        resume = RunLayout(run).checkpoint("last").exists()
        train(cfg, run, device=device, progress=False, resume=resume)
    return run


class StaleRunError(RuntimeError):
    """A finished run in the runs directory was trained with other settings."""


def run_script(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; a stale run ends it with one line on stderr and exit code 2."""
    try:
        main()
    except StaleRunError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def check_run_config(run: Path, config: dict) -> None:
    """Raise :class:`StaleRunError` if ``run/config.yaml`` and ``config``, both resolved, differ
    in their ``model`` or ``train`` section (the dimensions a run records are left out, as are
    ``train.ema_track_live``, which only adds the live weights' metrics to a run's record, and
    ``train.compile``, which runs the same layers fused: the same model up to float rounding)."""
    # resolved again: keys added since the run was trained take their defaults, which are
    # the settings it ran with
    stored = resolve_run_config(load_yaml(RunLayout(run).config))
    current = resolve_run_config(config)
    recorded = ("pos_dim", "x_dim", "period", "ema_track_live", "compile")
    changed = []
    for section in ("model", "train"):
        old = {k: v for k, v in stored.get(section, {}).items() if k not in recorded}
        new = {k: v for k, v in current[section].items() if k not in recorded}
        changed += config_diff(old, new, prefix=section + ".")
    if changed:
        raise StaleRunError(
            f"{run} was trained with other settings than the current config: "
            f"{'; '.join(changed)}; pass another --runs-dir or remove the run"
        )


def timed(fn, repeat: int) -> float:
    """Mean seconds of ``fn()`` over ``repeat`` calls, after one untimed warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def score_test_split(
    run: str | Path, batch_size: int = 256, prepare: Callable[[nn.Module], None] | None = None
) -> dict[str, np.ndarray]:
    """Evaluate a run's selected model on its test split (eval mode, batched; ``prepare(model)``
    runs after ``model.eval()``, e.g. to switch some modules back to training mode).

    Returns per event ``logit``, ``y`` and ``n_signal`` (ground-truth points), and per point
    ``label``, ``rho`` (transverse distance of the first two coordinates), ``positive`` (the
    point's event is signal) and, for LRI runs, ``score`` (the model's point importance).
    """
    from torch_geometric.loader import DataLoader

    from hepx.models.lri import LRIOutput
    from hepx.run import TrainedRun

    trained = TrainedRun.open(run)
    model, test = trained.model(), trained.splits()["test"]
    if prepare is not None:
        prepare(model)
    parts: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: torch.Tensor) -> None:
        parts.setdefault(key, []).append(value.numpy())

    with torch.no_grad():
        for b in DataLoader(test, batch_size=batch_size):
            out = model(b)
            if isinstance(out, LRIOutput):
                add("score", out.node_scores)
                out = out.logits
            y = b.y.squeeze(-1)
            add("logit", out.squeeze(-1))
            add("y", y)
            add("n_signal", torch.zeros(b.num_graphs).index_add_(0, b.batch, b.node_label.float()))
            add("label", b.node_label)
            add("rho", b.pos[:, :2].norm(dim=1))
            add("positive", y[b.batch] > 0.5)
    return {k: np.concatenate(v) for k, v in parts.items()}
