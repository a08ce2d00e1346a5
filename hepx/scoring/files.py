"""``hepx score RUN_DIR INPUT... --out OUT``: a trained run over ROOT files.

For each input the events are read with the run's reader (the options recorded with the run's
training data, overridable), scored in batches (:class:`~hepx.scoring.events.EventScorer`),
annotated (the kind's per-hit and per-track importance) and written to

* ``OUT/<name>.importance.root``: the trees of :mod:`hepx.post.outputs`, friends of the input
  (ActsTrack ``hits_importance`` has one entry per entry of the input ``hits`` tree, Tau3Mu
  ``mu_hit_importance`` one entry per entry of the input muon tree, NaN where not scored);
* ``OUT/<name>.events.parquet``: the annotated awkward events, with per-event ``logit``/``prob``;
* ``OUT/manifest.json``: run, checkpoint, kind, method and, per input, the files and counts.

How a file is read piece by piece is the dataset kind's (:meth:`hepx.kinds.DatasetKind.
scoring_chunks`: Tau3Mu in chunks of ``chunk_entries`` tree entries, ActsTrack in chunks of
whole events of about the reader's ``step_size`` hits-tree entries).
Everything is written to a temporary directory renamed to ``OUT`` at the end: on an error
nothing is left half-written.

The work on one input is :func:`score_one`, run one input after the other here or, with
``executor=`` (``--executor dask``), in parallel on workers that load the model from the
checkpoint themselves; the manifest is assembled in input order, so the outputs are the same
either way.
"""

from __future__ import annotations

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

from hepx.atomic import atomic_dir
from hepx.data.batching import check_budget
from hepx.errors import ConfigError, InputError
from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.explain.registry import resolve_explainer
from hepx.kinds import DatasetKind, get_kind
from hepx.kinds.files import describe_file
from hepx.post import outputs
from hepx.post.physics import DEFAULT_TOPK
from hepx.run import TrainedRun, load_checkpoint, model_from_checkpoint
from hepx.scoring.events import EventScorer

log = logging.getLogger("hepx")

__all__ = ["load_scored", "score_files", "score_one"]

#: ``executor(func, items) -> list`` (order-preserving), e.g. :func:`hepx.scale.dask_executor`.
Executor = Callable[[Callable[[Any], Any], Sequence[Any]], Sequence[Any]]


@dataclass(frozen=True)
class ScoreJob:
    """What scoring one input needs: paths and settings, no model (sent to dask workers)."""

    checkpoint: Path
    kind: str
    options: Mapping[str, Any]
    out_dir: Path
    batch_size: int
    chunk_entries: int
    device: str
    k: int | str
    explainer: ExplainerAlgorithm | None
    progress: bool | None
    max_points: int | None = None


_SCORER_CACHE: dict[tuple, EventScorer] = {}


def _scorer(job: ScoreJob, state: Mapping[str, Any] | None = None) -> EventScorer:
    """The job's scorer, built once per process (one cached at a time). The model comes from
    ``state`` when given (the checkpoint already loaded), else from the checkpoint file:
    dask workers load it themselves."""
    key = (
        str(job.checkpoint),
        job.checkpoint.stat().st_mtime_ns,
        job.kind,
        job.batch_size,
        job.max_points,
        job.device,
        job.explainer,
    )
    if key not in _SCORER_CACHE:
        model = model_from_checkpoint(state or load_checkpoint(job.checkpoint))
        _SCORER_CACHE.clear()
        _SCORER_CACHE[key] = EventScorer(
            model,
            job.kind,
            batch_size=job.batch_size,
            device=job.device,
            explainer=job.explainer,
            max_points=job.max_points,
        )
    return _SCORER_CACHE[key]


def score_one(job: ScoreJob, task: tuple[Any, str]) -> dict[str, Any]:
    """Read, score and write one input into ``job.out_dir``: the unit of parallel work."""
    from hepx.progress import progress_bar

    item, name = task
    kind = get_kind(job.kind)
    scorer = _scorer(job)
    root_path = job.out_dir / f"{name}.importance.root"
    pq_path = job.out_dir / f"{name}.events.parquet"
    counts = {"events": 0, "hits_scored": 0, **({"tracks": 0} if kind.has_tracks else {})}
    bar = progress_bar(progress=job.progress, desc=f"score {name}", unit="entry")
    writer = outputs.RootImportanceWriter(
        root_path, kind.name, friend=kind.file_friend(item, job.options)
    )
    with writer, outputs.ParquetAppender(pq_path) as parquet:
        for chunk in kind.scoring_chunks(item, job.options, job.chunk_entries):
            if chunk.events is not None and len(chunk.events):
                scored = scorer.annotate(chunk.events, k=job.k, progress=job.progress)
                if chunk.finish is not None:
                    scored = chunk.finish(scored)
                writer.add(scored, friend=chunk.friend)
                parquet.write(scored)
                _count(counts, scored)
            else:
                writer.add_empty_chunk(chunk.friend)
            bar.update(chunk.n_entries)
    bar.close()
    if counts["events"] == 0:
        raise InputError(f"{item}: no events left after the reader's selection, nothing to score")
    info = {"events": counts["events"], "hits_scored": counts["hits_scored"]}
    info.update(kind.file_info(item, job.options))
    if "tracks" in counts:
        info["tracks"] = counts["tracks"]
    log.info("%s: %d events scored -> %s, %s", name, info["events"], root_path.name, pq_path.name)
    return info


def _count(counts: dict[str, int], scored: ak.Array) -> None:
    counts["events"] += len(scored)
    counts["hits_scored"] += int(ak.sum(ak.num(scored.hits, axis=1)))
    if "tracks" in counts:
        counts["tracks"] += int(ak.sum(ak.num(scored.tracks, axis=1)))


def score_files(
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
    explainer: str | ExplainerAlgorithm | Callable[[Any, Any], Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    executor: Executor | None = None,
    max_points: int | None = None,
) -> dict[str, Any]:
    """Run the model of ``run_dir`` over ROOT ``inputs`` and write importance outputs to ``out``.

    Args:
        run_dir: a training run directory (``checkpoints/<checkpoint>.pt``).
        inputs: ActsTrack: directories with hits.root + particles.root, or hits files;
            Tau3Mu: CMS muon ntuples.
        out: output directory (written atomically; an existing one needs ``overwrite``).
        checkpoint: ``"best"`` or ``"last"``.
        reader_options: reader options on top of those recorded with the run.
        batch_size: events per model batch (the cap on events under ``max_points``).
        chunk_entries: Tau3Mu tree entries read at once (ActsTrack: reader option step_size).
        device: ``"cpu"`` or ``"cuda"``.
        k: top-set size of ``tracks.importance_topk`` (int or ``"signal"``).
        explainer: a method name of :mod:`hepx.explain.registry`, an algorithm or a function
            ``f(model, batch) -> scores``; needed for plain runs.
        overwrite: replace an existing ``out``.
        progress: progress bars (``None``: when stderr is a terminal).
        executor: runs the per-input work (e.g. :func:`hepx.scale.dask_executor`); each worker
            loads the model from the checkpoint and writes into ``out``'s temporary directory,
            which must be on a file system shared with the workers. Default: here.
        max_points: hits per model batch at most (bounds memory, not the scores), an event
            with more alone; ``None``: the run's ``train.eval_max_points_per_batch`` or none.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        CheckpointError: the run is missing or has no importance (plain model, no explainer).
        InputError: an input is not of the run's kind, unreadable, or empty after selection.

    Example
    -------
    >>> hepx.scoring.score_files("runs/tau3mu", ["ntuple.root"], "scored")  # doctest: +SKIP
    """
    run_dir, out = Path(run_dir), Path(out)
    _check_arguments(out, overwrite, batch_size, chunk_entries, max_points)
    run = TrainedRun.open(run_dir, checkpoint=checkpoint)
    kind = run.kind
    if not kind.scorable:
        raise InputError(f"{run_dir}: runs on {kind.title} data cannot score ROOT files")
    options = kind.reader_options({**run.reader_options, **dict(reader_options or {})})
    algorithm = resolve_explainer(explainer)
    items = _checked_items(kind, inputs, options)
    job = ScoreJob(
        checkpoint=run.checkpoint_path.resolve(),
        kind=kind.name,
        options=options,
        out_dir=Path(),  # the temporary directory, set below
        batch_size=batch_size,
        chunk_entries=chunk_entries,
        device=device,
        k=k,
        explainer=algorithm,
        progress=progress if executor is None else False,
        max_points=run.eval_max_points if max_points is None else max_points,
    )
    try:
        _scorer(job, run.state).require_scores(str(run_dir))
        manifest = _manifest(run, options, explainer, algorithm, k)
        return _score_all(job, run, items, (out, overwrite), executor, manifest)
    finally:
        _SCORER_CACHE.clear()  # no model (or GPU memory) kept after the call


def _check_arguments(
    out: Path, overwrite: bool, batch_size: int, chunk_entries: int, max_points: int | None
) -> None:
    """Raise :class:`ConfigError` unless the sizes are >= 1 (``max_points`` may be ``None``),
    then check the output directory (:func:`_check_out`)."""
    if batch_size < 1 or chunk_entries < 1:
        raise ConfigError("batch_size and chunk_entries must be >= 1")
    if max_points is not None:
        check_budget(max_points)
    _check_out(out, overwrite)


def _score_all(
    job: ScoreJob, run: TrainedRun, items: list, target: tuple[Path, bool], executor, manifest
) -> dict[str, Any]:
    """Score every input into a temporary directory, write the manifest, move it to the
    output (``target``: the directory and whether it may replace what is there)."""
    out, overwrite = target
    kind = run.kind
    names = _output_names(kind, items)
    t0 = time.perf_counter()
    with atomic_dir(out, check=partial(_check_out, overwrite=overwrite)) as tmp:
        work = partial(score_one, replace(job, out_dir=tmp.resolve()))
        tasks = [
            (kind.absolute(it) if executor else it, n) for it, n in zip(items, names, strict=True)
        ]
        infos = list(executor(work, tasks)) if executor else [work(t) for t in tasks]
        for item, name, info in zip(items, names, infos, strict=True):
            paths = [str(p) for p in kind.item_paths(item)]
            manifest["outputs"].append(
                {
                    "input": paths if len(paths) > 1 else paths[0],
                    "root": f"{name}.importance.root",
                    "parquet": f"{name}.events.parquet",
                    **info,
                }
            )
        manifest["seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def _check_out(out: Path, overwrite: bool) -> None:
    """An existing output (a file, a link, a directory with content) needs ``overwrite``."""
    from hepx.atomic import check_output

    check_output(
        out, overwrite=overwrite, is_ours=lambda p: not any(p.iterdir()), what="output directory"
    )


def _checked_items(kind: DatasetKind, inputs: Sequence[Any], options: Mapping[str, Any]) -> list:
    """The inputs as the kind's items, each checked to be of the run's kind before anything is
    written."""
    try:
        items = kind.input_items(inputs)
    except InputError as err:
        raise InputError(f"the model was trained on {kind.name} but {err}") from None
    for item in items:
        path = kind.item_paths(item)[0]
        try:
            kind.check_input(item, options)
        except InputError as err:
            raise InputError(
                f"the model was trained on {kind.name} but {path} is {describe_file(path)} ({err})"
            ) from None
    return items


def _output_names(kind: DatasetKind, items: Sequence[Any]) -> list[str]:
    names = [kind.output_name(it) for it in items]
    if len(set(names)) != len(names):
        names = [f"{i:03d}_{n}" for i, n in enumerate(names)]
    return names


def _manifest(run: TrainedRun, options, explainer, algorithm, k) -> dict[str, Any]:
    return {
        "format": "hepx-explain",
        "version": 1,
        "run_dir": str(run.directory.resolve()),
        "checkpoint": run.checkpoint,
        "epoch": run.epoch,
        "kind": run.kind.name,
        "method": run.method,
        # a method name as given; "callable" for a function or an algorithm object
        "explainer": explainer
        if isinstance(explainer, str)
        else (None if algorithm is None else "callable"),
        "reader_options": dict(options),
        "top_k": k,
        "fill_value": "NaN (hits/events not scored)",
        "outputs": [],
    }


def load_scored(out: str | os.PathLike) -> tuple[dict[str, Any], ak.Array]:
    """Read a ``hepx score`` output directory: (manifest, all annotated events concatenated).

    Example
    -------
    >>> manifest, events = load_scored("scored")       # doctest: +SKIP
    """
    out = Path(out)
    path = out / "manifest.json"
    if not path.exists():
        raise InputError(f"{out}: no manifest.json (not written by hepx score)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "hepx-explain":
        raise InputError(f"{path}: not a hepx score manifest")
    outputs_ = manifest.get("outputs")
    if not isinstance(outputs_, list) or not outputs_:
        raise InputError(f"{path}: a damaged manifest: no outputs listed")
    parts = [outputs.read_parquet(_inside(out, o.get("parquet"), path)) for o in outputs_]
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    return manifest, events


def _inside(directory: Path, name: object, manifest: Path) -> Path:
    """``directory / name`` for a file name the manifest lists; never a path outside it."""
    if not isinstance(name, str) or not name:
        raise InputError(f"{manifest}: a damaged manifest: an output without its file name")
    target = (directory / name).resolve()
    if target.parent != directory.resolve():
        raise InputError(
            f"{manifest}: lists {name!r}, which is not a file of {directory}; hepx reads only "
            "the files of a score output's own directory"
        )
    return target
