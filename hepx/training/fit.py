"""``hepx train``: from a run config to a trained run directory (:mod:`hepx.run`)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from hepx.atomic import atomic_file, make_dir
from hepx.config.run import resolve_run_config
from hepx.errors import CheckpointError, ConfigError, InputError
from hepx.run import RunLayout, dataset_record, load_checkpoint, resolve_dataset_path
from hepx.training.distributed import rank_and_world, train_device, wrap
from hepx.training.loop import FitLoop
from hepx.training.step import TrainStep, make_optimizer

__all__ = ["check_frame_units", "config_diff", "train"]


def train(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    device: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train the model of ``config`` and write the run directory ``out_dir``.

    Args:
        config: run config (sections ``dataset``, ``model``, ``train``, ``eval``), e.g.
            ``hepx.config.load_yaml(hepx.config.find_config("tau3mu/lri_bernoulli_egnn"))``.
        out_dir: the run directory (:class:`hepx.run.RunLayout`).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available).
        resume: continue from ``out_dir/checkpoints/last.pt``; the config must be the same
            except for ``train.epochs``.
        progress: a progress bar per epoch (``None``: when stderr is a terminal).

    Returns:
        The test metrics of the selected epoch (also in ``test_metrics.json``).

    Example
    -------
    >>> cfg = hepx.config.load_yaml(hepx.config.find_config("tau3mu/lri_bernoulli_egnn"))  # doctest: +SKIP
    >>> cfg["dataset"]["path"] = "data/tau3mu"                                           # doctest: +SKIP
    >>> hepx.training.train(cfg, "runs/tau3mu")["test_pred_auc"]                          # doctest: +SKIP
    """
    cfg = resolve_run_config(config)
    cfg["dataset"]["path"] = str(resolve_dataset_path(cfg["dataset"]["path"]))
    rank, world = rank_and_world()
    dev = train_device(device, world)
    layout = RunLayout(Path(out_dir))
    last = layout.checkpoint("last")
    if not resume and last.exists():
        raise InputError(
            f"{layout.directory} already holds a run: resume it (hepx train --resume) or train "
            "into another directory"
        )
    created = _check_run_directory(layout)
    with _discarded_on_failure(layout, created and rank == 0):
        return _fit(cfg, layout, dev, rank, world, resume, progress)


def _check_run_directory(layout: RunLayout) -> bool:
    """Refuse a run directory that is a file, lies below one, or is someone else's non-empty
    directory; returns whether it does not exist yet (and is created by this run)."""
    from hepx.atomic import check_creatable

    directory = layout.directory
    check_creatable(directory, what="run directory")
    if not directory.exists():
        return True
    if any(directory.iterdir()) and not layout.config.exists():
        raise InputError(
            f"{directory}: a non-empty directory that is not a hepx run; train into a new or "
            "empty directory"
        )
    return False


@contextlib.contextmanager
def _discarded_on_failure(layout: RunLayout, created: bool) -> Iterator[None]:
    """A run directory this run created is removed again if the run fails (or is stopped)
    before its first checkpoint: nothing half-written is left behind."""
    try:
        yield
    except BaseException:
        if created and not layout.checkpoint("last").exists():
            shutil.rmtree(layout.directory, ignore_errors=True)
        raise


def _fit(cfg, layout: RunLayout, dev, rank: int, world: int, resume: bool, progress) -> dict:
    """Build the data, the model and the loop of a checked config; run the loop."""
    from hepx.models import build_model, compile_layers

    last = layout.checkpoint("last")
    ds = _training_data(cfg)
    splits = ds.split(cfg["dataset"]["split"], seed=cfg["dataset"]["split_seed"])
    torch.manual_seed(cfg["train"]["seed"])  # weight initialisation
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta.get("period")
    )
    cfg["model"] = model.config
    t = cfg["train"]
    model.to(dev)
    if t["compile"]:
        compile_layers(model)
    step = TrainStep(model, pred_coef=t["pred_loss_coef"], info_coef=t["info_loss_coef"])
    loop = FitLoop(
        cfg,
        layout,
        model,
        make_optimizer(model, t),
        wrap(step, world, find_unused=step.is_lri),
        splits,
        dataset=dataset_record(ds.meta),
        device=dev,
        rank=rank,
        world=world,
        progress=progress,
    )
    if resume:
        state = load_checkpoint(last)
        _check_resumable(state, cfg, last, ds.meta)
        loop.restore(state)
    if rank == 0:
        make_dir(layout.directory)
        with atomic_file(layout.config) as tmp:
            tmp.write_text(yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False))
        _record_environment(layout, dev, world, resume)
    return loop.run()


def environment(device: torch.device, world: int) -> dict[str, Any]:
    """What a run's numbers depend on besides its config and data: threads, device, versions."""
    import platform

    import hepx
    from hepx.threads import usable_cores

    return {
        "threads": torch.get_num_threads(),
        "device": str(device),
        "processes": world,
        "usable_cores": len(usable_cores()),
        "hepx": hepx.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _record_environment(layout: RunLayout, device: torch.device, world: int, resume: bool) -> None:
    """Write ``environment.json``; a resumed run keeps the first record and warns when the
    thread count differs (the run is reproducible for one thread count only)."""
    import logging

    now = environment(device, world)
    if resume and layout.environment.exists():
        before = json.loads(layout.environment.read_text())
        if before.get("threads") != now["threads"]:
            logging.getLogger("hepx").warning(
                "%s was trained with %s CPU thread(s), resumed with %d: the resumed epochs "
                "differ from an uninterrupted run's (use --threads %s to match)",
                layout.directory,
                before.get("threads"),
                now["threads"],
                before.get("threads"),
            )
        return
    with atomic_file(layout.environment) as tmp:
        tmp.write_text(json.dumps(now, indent=2) + "\n")


def _training_data(cfg: Mapping[str, Any]):
    """The run's dataset, checked against the config's kind and the model's frame units."""
    from hepx.data import load_dataset

    ds = load_dataset(cfg["dataset"]["path"])
    kind = cfg["dataset"]["kind"]
    if kind is not None and kind != ds.meta.get("kind"):
        raise InputError(
            f"config expects a '{kind}' dataset but {cfg['dataset']['path']} holds "
            f"'{ds.meta.get('kind')}'"
        )
    check_frame_units(cfg["model"], ds.meta)
    return ds


def _check_resumable(
    state: Mapping[str, Any], cfg: Mapping[str, Any], path: Path, meta: Mapping[str, Any]
) -> None:
    """Refuse to resume with a config that differs in anything but ``train.epochs``, or on a
    dataset whose content changed (when both fingerprints are known)."""
    recorded, current = state["dataset"].get("fingerprint"), meta.get("fingerprint")
    if recorded is not None and current is not None and recorded != current:
        raise CheckpointError(
            f"{path}: the dataset {cfg['dataset']['path']} changed since the run began "
            "(another content fingerprint); train a new run on it"
        )
    old = copy.deepcopy(dict(state["config"]))
    new = json.loads(json.dumps(cfg))
    old["dataset"] = {
        **old.get("dataset", {}),
        "path": str(resolve_dataset_path(old["dataset"]["path"])),
    }
    old["train"].pop("epochs", None)
    new["train"].pop("epochs", None)
    changed = config_diff(old, new)
    if changed:
        raise CheckpointError(
            f"{path}: the config differs from the run being resumed in "
            f"{', '.join(changed)} (only train.epochs may change)"
        )


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like configs (``key (run X, now Y)``).

    Example
    -------
    >>> config_diff({"train": {"lr": 0.1}}, {"train": {"lr": 0.2}})
    ['train.lr (run 0.1, now 0.2)']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}{key}"
            if key not in old or key not in new:
                run = old[key] if key in old else "absent"
                now = new[key] if key in new else "absent"
                out.append(f"{name} (run {run}, now {now})")
            else:
                out.extend(config_diff(old[key], new[key], name + "."))
        return out
    return [] if old == new else [f"{prefix.rstrip('.')} (run {old}, now {new})"]


_METRES_PER_UNIT = {"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0}


def check_frame_units(model_cfg: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Refuse a beam-frame model whose backbone frame is not in metres.

    The beam frame's curvature feature is compressed at a scale of order 0.01 per metre; with
    positions left in mm it would be flat and the model could not see track curvature. Only
    checked when the dataset declares a length unit (``meta["pos_unit"]``).
    """
    if model_cfg.get("frame", "global") != "beam":
        return
    unit = meta.get("pos_unit")
    if unit not in _METRES_PER_UNIT:
        return
    pos_scale = float(model_cfg.get("pos_scale", 1.0))
    if not math.isclose(pos_scale, _METRES_PER_UNIT[unit], rel_tol=1e-6):  # pos * scale in m
        raise ConfigError(
            f"model.frame 'beam' needs the backbone frame in metres; the dataset's positions are "
            f"in {unit}, so set model.pos_scale: {_METRES_PER_UNIT[unit]:g} (got {pos_scale:g})"
        )
