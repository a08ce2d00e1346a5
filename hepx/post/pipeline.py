"""``hepx explain RUN_DIR INPUT.root... --out OUT``: a trained run over ROOT files.

For each input the events are read with the run's reader (the options recorded in the run's
dataset manifest, overridable), turned into point clouds in memory
(:func:`hepx.data.convert.actstrack_arrays` / ``tau3mu_arrays``, no cache), run through the
model in batches, annotated (:func:`hepx.post.annotate`) and written to

* ``OUT/<name>.importance.root``: the TTrees of :mod:`hepx.post.outputs` (friend-ready:
  ActsTrack ``hits_importance`` has one entry per entry of the input ``hits`` tree, Tau3Mu
  ``mu_hit_importance`` one entry per entry of the input muon tree, NaN where not scored);
* ``OUT/<name>.events.parquet``: the annotated awkward events, with per-event ``logit``/``prob``;
* ``OUT/manifest.json``: run, checkpoint, kind, method and, per input, the files and counts.

Tau3Mu inputs are processed in chunks of ``chunk_entries`` tree entries (bounded memory); the
ActsTrack reader needs a whole file at once (hits are not sorted by event), the model still runs
in batches. Everything is written to a temporary directory renamed to ``OUT`` at the end: on an
error nothing is left half-written.

The work on one input (read, score, write its two files) is :func:`_explain_one`, run one input
after the other here or, with ``executor=`` (``hepx explain --executor dask``), in parallel on
dask workers that load the model from the checkpoint themselves; the manifest is assembled in
input order, so the outputs are the same either way.

Importance comes from LRI runs (``lri_bernoulli``: keep probability; ``lri_gaussian``:
``-det Sigma``, plus ``hits.axis_angle`` for ActsTrack). Plain models have no built-in importance:
register a post-hoc explainer with :func:`register_explainer` and pass its name (``--explainer``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepx._atomic import atomic_dir
from hepx.errors import CheckpointError, ConfigError, InputError
from hepx.post import outputs
from hepx.post.physics import DEFAULT_TOPK, annotate

log = logging.getLogger("hepx")

__all__ = ["EXPLAINERS", "explain_files", "register_cli", "register_explainer"]

#: Post-hoc explainers usable by :func:`explain_files` / ``hepx explain --explainer NAME``:
#: ``name -> func(model, batch) -> Tensor [num_points]`` (higher = more important). ``model`` is
#: the run's model in eval mode, ``batch`` a PyG batch of the run's dataset kind. Empty by
#: default: hepx.explain may register its explainers here.
EXPLAINERS: dict[str, Callable[[Any, Any], Any]] = {}

_MUON_TREE = "Ntuplizer/MuonTrackTree"


def register_explainer(name: str, func: Callable[[Any, Any], Any]) -> None:
    """Make ``func(model, batch) -> scores [N]`` available as ``hepx explain --explainer name``."""
    EXPLAINERS[name] = func


# --------------------------------------------------------------------------- run and inputs


def resolve_explainer(explainer: str | Callable[[Any, Any], Any] | None):
    """A callable ``f(model, batch) -> scores [N]`` from a name or callable (None stays None).

    Names are looked up in :data:`EXPLAINERS` first, then among hepx's post-hoc methods
    (:func:`hepx.explain.get_explainer`: gradcam, gradgeo, ig, ggig, bernmask, ...).
    """
    if explainer is None or callable(explainer):
        return explainer
    if explainer in EXPLAINERS:
        return EXPLAINERS[explainer]
    from hepx.explain import get_explainer

    return get_explainer(explainer)  # ConfigError listing the known methods if unknown


def _load_run(run_dir: Path, checkpoint: str) -> dict[str, Any]:
    from hepx.training import load_checkpoint

    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.exists():
        raise CheckpointError(
            f"{run_dir}: no checkpoints/{checkpoint}.pt (not a hepx training run?)"
        )
    return load_checkpoint(path)


def _run_kind_and_options(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Dataset kind of the run and the reader options recorded with its dataset."""
    from hepx.data.dataset import read_manifest

    cfg = state["config"]
    kind = cfg.get("dataset", {}).get("kind")
    options: dict[str, Any] = {}
    path = cfg.get("dataset", {}).get("path")
    if path:
        try:
            manifest = read_manifest(path)
            kind = kind or manifest.get("kind")
            options = dict(manifest.get("reader_options") or {})
        except Exception:  # the dataset cache may be gone; the model still knows its dims
            pass
    if kind is None:
        mcfg = cfg["model"]
        kind = {(3, 0): "actstrack", (2, 1): "tau3mu"}.get((mcfg.get("pos_dim"), mcfg.get("x_dim")))
    if kind not in ("actstrack", "tau3mu"):
        raise CheckpointError(
            f"hepx explain supports ActsTrack and Tau3Mu runs; this run's dataset kind is {kind!r}"
        )
    return kind, options


def _what_is(path: Path) -> str:
    from hepx.io._root import list_trees, open_root

    try:
        trees = list_trees(open_root(path))
    except InputError:
        return "not a readable ROOT file"
    if _MUON_TREE in trees:
        return "a CMS muon ntuple (tau3mu)"
    if "hits" in trees or "particles" in trees:
        return "ACTS simulation output (actstrack)"
    return f"a ROOT file with trees {', '.join(trees) or 'none'}"


def _check_input(kind: str, item: Any, options: Mapping[str, Any]) -> None:
    """Fail early, before anything is written, if an input is not of the run's kind."""
    from hepx.io._root import open_tree, require_branches

    path = item[0] if kind == "actstrack" else item
    try:
        if kind == "actstrack":
            tree = open_tree(item[0], options.get("hits_tree", "hits"))
            require_branches(tree, ["event_id", "geometry_id", "tx", "ty", "tz"], what="ACTS hits")
        else:
            from hepx.io.cms_muon import HIT_FIELDS

            tree = open_tree(item, options.get("tree", _MUON_TREE))
            require_branches(tree, list(HIT_FIELDS.values()), what="CMS muon hits")
    except InputError as err:
        raise InputError(
            f"the model was trained on {kind} but {path} is {_what_is(Path(path))} ({err})"
        ) from None


def _items(kind: str, inputs: Sequence[str | os.PathLike]) -> list[Any]:
    from hepx.data.convert import _actstrack_pairs

    if not inputs:
        raise InputError("no input files given")
    if kind == "actstrack":
        for p in inputs:
            if Path(p).is_file() and _MUON_TREE in _trees_or_empty(Path(p)):
                raise InputError(
                    f"the model was trained on actstrack but {p} is a CMS muon ntuple (tau3mu)"
                )
        return _actstrack_pairs(inputs)
    out = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            raise InputError(
                f"{p}: is a directory; the model was trained on tau3mu, give CMS muon ntuple files"
            )
        out.append(p)
    return out


def _trees_or_empty(path: Path) -> list[str]:
    from hepx.io._root import list_trees, open_root

    try:
        return list_trees(open_root(path))
    except InputError:
        return []


def _output_names(kind: str, items: Sequence[Any]) -> list[str]:
    paths = [Path(it[0]) if kind == "actstrack" else Path(it) for it in items]
    names = [p.parent.name if p.stem == "hits" and p.parent.name else p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [f"{i:03d}_{n}" for i, n in enumerate(names)]
    return names


# --------------------------------------------------------------------------- model application


class _Scorer:
    """Runs the model over reader events: per-hit importance, per-event logits, LRI-Gaussian Sigma."""

    def __init__(self, model, kind: str, *, batch_size: int, device: str, explainer=None):
        import torch

        self.torch = torch
        self.model = model.to(device).eval()
        self.kind = kind
        self.batch_size = batch_size
        self.device = device
        self.explainer = explainer
        self.is_lri = hasattr(model, "extractor")
        self.method = model.config.get("method") if hasattr(model, "config") else None

    def __call__(self, events: ak.Array, bar=None) -> dict[str, np.ndarray]:
        from torch_geometric.loader import DataLoader

        from hepx.data.convert import actstrack_arrays, tau3mu_arrays
        from hepx.data.dataset import PointCloudDataset

        arrays = (actstrack_arrays if self.kind == "actstrack" else tau3mu_arrays)(events)
        ds = PointCloudDataset(arrays)
        loader = DataLoader(ds, batch_size=self.batch_size, shuffle=False)
        scores, logits, sigmas = [], [], []
        with self.torch.no_grad():
            for batch in loader:
                batch = batch.to(self.device)
                if self.explainer is not None:
                    classifier = self.model.classifier if self.is_lri else self.model
                    logit = classifier(batch)
                    with self.torch.enable_grad():
                        s = self.explainer(self.model, batch)
                    s = self.torch.as_tensor(s)
                else:
                    out = self.model(batch)
                    logit, s = out.logits, out.node_scores
                    if getattr(out, "sigma", None) is not None:
                        sigmas.append(out.sigma.detach().double().cpu().numpy())
                scores.append(s.detach().double().cpu().numpy().reshape(-1))
                logits.append(logit.detach().double().cpu().numpy().reshape(-1))
                if bar is not None and self.kind == "actstrack":
                    bar.update(batch.num_graphs)
        res = {
            "importance": np.concatenate(scores) if scores else np.zeros(0),
            "logit": np.concatenate(logits) if logits else np.zeros(0),
        }
        if sigmas:
            res["sigma"] = np.concatenate(sigmas)
        if len(res["importance"]) != arrays.num_points:
            raise InputError(
                f"the explainer returned {len(res['importance'])} scores for {arrays.num_points} hits"
            )
        return res


def _score_events(scorer: _Scorer, events: ak.Array, k: Any, bar=None) -> ak.Array:
    res = scorer(events, bar)
    sigma = res.get("sigma") if scorer.kind == "actstrack" else None
    if sigma is not None and sigma.shape[1:] != (3, 3):
        sigma = None
    out = annotate(events, res["importance"], sigma=sigma, k=k)
    logit = res["logit"].astype(np.float32)
    out = ak.with_field(out, logit, "logit")
    return ak.with_field(
        out, (1.0 / (1.0 + np.exp(-logit.astype(np.float64)))).astype(np.float32), "prob"
    )


class _ParquetAppender:
    """Parquet written chunk by chunk (pyarrow ParquetWriter) with a fixed schema."""

    def __init__(self, path: Path):
        self.path = path
        self.writer = None
        self.schema = None

    def write(self, events: ak.Array) -> None:
        import pyarrow.parquet as pq

        table = ak.to_arrow_table(ak.Array(events, attrs=None))
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, self.schema)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------- per-kind drivers


def _explain_acts(scorer, item, options, root_path, pq_path, k, progress) -> dict[str, Any]:
    import uproot
    from tqdm.auto import tqdm

    from hepx.io import read_acts

    events = read_acts(item[0], item[1], **options)
    with uproot.open(item[0]) as f:
        hit_event_id = f[options.get("hits_tree", "hits")]["event_id"].array(library="np")
    with tqdm(
        total=len(events),
        desc=f"explain {item[0].parent.name or item[0].name}",
        unit="ev",
        disable=None if progress is None else not progress,
        leave=False,
    ) as bar:
        scored = _score_events(scorer, events, k, bar)
    writer = outputs.RootImportanceWriter(
        root_path, "actstrack", friend=outputs.FriendLayout(event_id=hit_event_id)
    )
    with writer:
        writer.add(scored)
    pq = _ParquetAppender(pq_path)
    pq.write(scored)
    pq.close()
    return {
        "events": len(scored),
        "hits_scored": int(ak.sum(ak.num(scored.hits, axis=1))),
        "hits_in_file": len(hit_event_id),
        "tracks": int(ak.sum(ak.num(scored.tracks, axis=1))),
    }


def _explain_cms(scorer, path, options, root_path, pq_path, k, chunk_entries, progress):
    from tqdm.auto import tqdm

    from hepx.io import read_cms_muon
    from hepx.io._root import open_tree

    tree_name = options.get("tree", _MUON_TREE)
    tree = open_tree(path, tree_name)
    n_entries = tree.num_entries
    id_branch = options.get("event_id_branch")
    opts = {k_: v for k_, v in options.items() if k_ not in ("entry_start", "entry_stop")}
    opts["event_id_branch"] = None  # event_id = entry number, mapped below
    n_events = n_hits = 0
    pq = _ParquetAppender(pq_path)
    bar = tqdm(
        total=n_entries,
        desc=f"explain {path.name}",
        unit="entry",
        disable=None if progress is None else not progress,
        leave=False,
    )
    try:
        with outputs.RootImportanceWriter(root_path, "tau3mu") as writer:
            for a in range(0, n_entries, chunk_entries):
                b = min(a + chunk_entries, n_entries)
                counts = (
                    tree["n_mu_hit"].array(entry_start=a, entry_stop=b, library="np")
                    if "n_mu_hit" in tree.keys()
                    else np.asarray(
                        ak.num(tree["mu_hit_sim_eta"].array(entry_start=a, entry_stop=b))
                    )
                )
                ids = (
                    tree[id_branch]
                    .array(entry_start=a, entry_stop=b, library="np")
                    .astype(np.int64)
                    if id_branch
                    else np.arange(a, b, dtype=np.int64)
                )
                try:
                    events = read_cms_muon(path, entry_start=a, entry_stop=b, **opts)
                except InputError as err:
                    if "no events left" not in str(err):
                        raise
                    events = None
                layout = outputs.FriendLayout(event_id=ids, counts=counts, entry_start=a)
                if events is not None and len(events):
                    scored = _score_events(scorer, events, k)
                    entry = ak.to_numpy(scored.event_id).astype(np.int64)
                    scored = ak.with_field(scored, entry, "entry")
                    scored = ak.with_field(scored, ids[entry - a], "event_id")
                    writer.add(scored, friend=layout)
                    pq.write(scored)
                    n_events += len(scored)
                    n_hits += int(ak.sum(ak.num(scored.hits, axis=1)))
                else:
                    writer.add_empty_muon_chunk(layout)
                bar.update(b - a)
    finally:
        bar.close()
        pq.close()
    if n_events == 0:
        raise InputError(f"{path}: no events left after the reader's selection, nothing to explain")
    return {"events": n_events, "hits_scored": n_hits, "entries_in_file": n_entries}


# --------------------------------------------------------------------------- the unit of work


@dataclass(frozen=True)
class _Job:
    """What explaining one input needs: paths and settings, no model (sent to dask workers)."""

    checkpoint: Path
    kind: str
    options: Mapping[str, Any]
    out_dir: Path
    batch_size: int
    chunk_entries: int
    device: str
    k: int | str
    explainer: Callable[[Any, Any], Any] | None
    progress: bool | None


_SCORER_CACHE: dict[tuple, _Scorer] = {}


def _scorer(job: _Job, state: Mapping[str, Any] | None = None) -> _Scorer:
    """The job's scorer, built once per process (one cached at a time).

    The model comes from ``state`` when given (the checkpoint already loaded), else from the
    checkpoint file: dask workers load it themselves.
    """
    key = (
        str(job.checkpoint),
        job.checkpoint.stat().st_mtime_ns,
        job.kind,
        job.batch_size,
        job.device,
        job.explainer,
    )
    if key not in _SCORER_CACHE:
        from hepx.training import load_checkpoint, model_from_checkpoint

        model = model_from_checkpoint(state or load_checkpoint(job.checkpoint))
        _SCORER_CACHE.clear()
        _SCORER_CACHE[key] = _Scorer(
            model, job.kind, batch_size=job.batch_size, device=job.device, explainer=job.explainer
        )
    return _SCORER_CACHE[key]


def _explain_one(job: _Job, task: tuple[Any, str]) -> dict[str, Any]:
    """Read, score and write one input into ``job.out_dir``: the unit of parallel work."""
    item, name = task
    scorer = _scorer(job)
    root_path = job.out_dir / f"{name}.importance.root"
    pq_path = job.out_dir / f"{name}.events.parquet"
    if job.kind == "actstrack":
        info = _explain_acts(scorer, item, job.options, root_path, pq_path, job.k, job.progress)
    else:
        info = _explain_cms(
            scorer,
            item,
            job.options,
            root_path,
            pq_path,
            job.k,
            job.chunk_entries,
            job.progress,
        )
    log.info("%s: %d events scored -> %s, %s", name, info["events"], root_path.name, pq_path.name)
    return info


# --------------------------------------------------------------------------- public API


def explain_files(
    run_dir: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    checkpoint: str = "best",
    reader_options: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    chunk_entries: int = 20_000,
    device: str = "cpu",
    k: int | str = DEFAULT_TOPK,
    explainer: str | Callable[[Any, Any], Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    executor: Callable[[Callable[[Any], Any], Sequence[Any]], Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Run the model of ``run_dir`` over ROOT ``inputs`` and write importance outputs to ``out``.

    Args:
        run_dir: a training run directory (``checkpoints/<checkpoint>.pt``).
        inputs: ActsTrack: directories with hits.root + particles.root, or hits files;
            Tau3Mu: CMS muon ntuples.
        out: output directory (written atomically; an existing one needs ``overwrite``).
        reader_options: reader keyword arguments, on top of those recorded with the run's dataset.
        batch_size: events per model batch. chunk_entries: Tau3Mu tree entries read at once.
        k: top-set size of ``tracks.importance_topk`` (int or ``"signal"``).
        explainer: name in :data:`EXPLAINERS` (or a callable) for runs without LRI importance.
        executor: optional ``executor(func, items) -> list`` (order-preserving) running the
            per-input work, e.g. :func:`hepx.scale.dask_executor`; each worker loads the model
            from the checkpoint itself and writes into the output directory, which must be on
            a file system shared with the workers. Default: one input after the other, here.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        CheckpointError: the run is missing or has no importance (plain model, no explainer).
        InputError: an input is not of the run's kind, unreadable, or empty after selection.
    """
    from hepx.data.convert import check_options
    from hepx.io import read_acts, read_cms_muon

    run_dir, out = Path(run_dir), Path(out)
    if batch_size < 1 or chunk_entries < 1:
        raise ConfigError("batch_size and chunk_entries must be >= 1")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    state = _load_run(run_dir, checkpoint)
    kind, options = _run_kind_and_options(state)
    reader = read_acts if kind == "actstrack" else read_cms_muon
    options = check_options(
        reader, {**options, **dict(reader_options or {})}, where=f"reader options for {kind}"
    )
    method = state["config"]["model"].get("method")
    func = resolve_explainer(explainer)
    items = _items(kind, inputs)
    job = _Job(
        checkpoint=(run_dir / "checkpoints" / f"{checkpoint}.pt").resolve(),
        kind=kind,
        options=options,
        out_dir=Path(),  # the temporary directory, set below
        batch_size=batch_size,
        chunk_entries=chunk_entries,
        device=device,
        k=k,
        explainer=func,
        progress=progress if executor is None else False,
    )
    scorer = _scorer(job, state)  # checks the weights; the local path reuses it
    try:
        if func is None and not scorer.is_lri:
            raise CheckpointError(
                f"{run_dir}: a plain model (method {method!r}) has no built-in importance; "
                "hepx explain needs an LRI run (lri_bernoulli, lri_gaussian) or a registered "
                "--explainer"
            )
        for item in items:
            _check_input(kind, item, options)
        names = _output_names(kind, items)

        t0 = time.perf_counter()
        manifest: dict[str, Any] = {
            "format": "hepx-explain",
            "version": 1,
            "run_dir": str(run_dir.resolve()),
            "checkpoint": checkpoint,
            "epoch": int(state.get("epoch", -1)),
            "kind": kind,
            "method": method,
            "explainer": explainer
            if isinstance(explainer, str)
            else (None if func is None else "callable"),
            "reader_options": options,
            "top_k": k,
            "fill_value": "NaN (hits/events not scored)",
            "outputs": [],
        }
        with atomic_dir(out, overwrite=True) as tmp:
            work = partial(_explain_one, replace(job, out_dir=tmp.resolve()))
            if executor is None:
                infos = [work(task) for task in zip(items, names, strict=True)]
            else:
                tasks = [
                    (_absolute(kind, item), name) for item, name in zip(items, names, strict=True)
                ]
                infos = list(executor(work, tasks))
            for item, name, info in zip(items, names, infos, strict=True):
                source = [str(item[0]), str(item[1])] if kind == "actstrack" else str(item)
                manifest["outputs"].append(
                    {
                        "input": source,
                        "root": f"{name}.importance.root",
                        "parquet": f"{name}.events.parquet",
                        **info,
                    }
                )
            manifest["seconds"] = round(time.perf_counter() - t0, 3)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest
    finally:
        _SCORER_CACHE.clear()  # no model (or GPU memory) kept after the call


def _absolute(kind: str, item: Any) -> Any:
    """An input with absolute paths, for workers that may run in another directory."""
    return tuple(Path(p).resolve() for p in item) if kind == "actstrack" else Path(item).resolve()


def load_explained(out: str | os.PathLike) -> tuple[dict[str, Any], ak.Array]:
    """Read an ``hepx explain`` output directory: (manifest, all annotated events concatenated)."""
    out = Path(out)
    path = out / "manifest.json"
    if not path.exists():
        raise InputError(f"{out}: no manifest.json (not written by hepx explain)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if manifest.get("format") != "hepx-explain":
        raise InputError(f"{path}: not an hepx explain manifest")
    parts = [outputs.read_parquet(out / o["parquet"]) for o in manifest["outputs"]]
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    return manifest, events


# --------------------------------------------------------------------------- CLI


def _cmd_explain(args: argparse.Namespace) -> None:
    options = {}
    if args.config:
        from hepx.config import check_keys, load_yaml

        cfg = load_yaml(args.config)
        check_keys(cfg, ["reader"], where=str(args.config))
        options = cfg.get("reader") or {}
    k: int | str = args.top_k if args.top_k == "signal" else _int(args.top_k, "--top-k")
    executor = None
    if args.executor == "dask":
        from hepx.scale import dask_executor

        executor = dask_executor(args.scheduler, workers=args.workers)
    manifest = explain_files(
        args.run_dir,
        args.inputs,
        args.out,
        checkpoint=args.checkpoint,
        reader_options=options,
        batch_size=args.batch_size,
        chunk_entries=args.chunk_entries,
        device=args.device,
        k=k,
        explainer=args.explainer,
        overwrite=args.overwrite,
        progress=None if not args.no_progress else False,
        executor=executor,
    )
    n = sum(o["events"] for o in manifest["outputs"])
    log.info(
        "explained %d events from %d file(s) in %.1f s -> %s",
        n,
        len(manifest["outputs"]),
        manifest["seconds"],
        args.out,
    )


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer or 'signal', got {text!r}") from None


def register_cli(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``hepx explain`` to the CLI's subparsers."""
    p = sub.add_parser(
        "explain",
        help="run a trained LRI model over ROOT files: per-hit/track importance + event scores",
        description=(
            "Writes OUT/<input>.importance.root (friend-ready TTrees), "
            "OUT/<input>.events.parquet and OUT/manifest.json; nothing is written on error."
        ),
    )
    p.add_argument("run_dir", type=Path, help="training run directory (hepx train --out)")
    p.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="ActsTrack: directories with hits.root + particles.root (or hits files); Tau3Mu: ntuples",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument(
        "--config",
        type=Path,
        help="YAML with a 'reader:' section overriding the run's reader options",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--chunk-entries", type=int, default=20_000, help="Tau3Mu entries read per chunk"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--top-k", default=str(DEFAULT_TOPK), help="hits in the per-event top set, or 'signal'"
    )
    p.add_argument("--explainer", default=None, help="registered post-hoc explainer (plain models)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="local: inputs one after the other; dask: inputs in parallel on a dask cluster",
    )
    p.add_argument(
        "--scheduler", default=None, help="dask scheduler address (default: a LocalCluster)"
    )
    p.add_argument("--workers", type=int, default=2, help="workers of the default LocalCluster")
    p.set_defaults(func=_cmd_explain)
    return p
