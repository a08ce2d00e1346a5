"""From input files to cached point-cloud datasets: read with the kind's reader, flatten, save.

The per-kind work (reader, options, arrays) is the dataset kind's (:mod:`hepx.kinds`); this
module runs it over the inputs, here or on an executor, and writes one dataset directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hepx.data.dataset import PointCloudArrays, concat_arrays, save_arrays
from hepx.kinds import KINDS, DatasetKind, get_kind

__all__ = ["KINDS", "convert", "convert_one"]

#: ``executor(func, items) -> list`` (order-preserving), e.g. :func:`hepx.scale.dask_executor`.
Executor = Callable[[Callable[[Any], Any], Sequence[Any]], Sequence[Any]]


def convert(
    kind: str | DatasetKind,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    reader_options: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    overwrite: bool = False,
) -> PointCloudArrays:
    """Read ``inputs`` with the reader of ``kind`` and write a dataset directory ``out_dir``.

    Args:
        kind: ``"actstrack"`` (inputs: directories with hits.root + particles.root, or hits
            files), ``"tau3mu"`` (CMS muon ntuples) or ``"generic"`` (Parquet / ROOT point
            clouds), or a :class:`~hepx.kinds.DatasetKind`.
        inputs: the input files or directories.
        out_dir: the dataset directory, written atomically.
        reader_options: keyword arguments of the kind's reader (e.g. the ``reader:`` section of
            a YAML config); unknown keys and wrong types are refused before anything is read.
        executor: runs the per-input work (:func:`convert_one`), e.g. on dask; default: here.
        overwrite: replace whatever is at ``out_dir``; without it only a dataset directory
            hepx wrote may be replaced (a file, a link or another directory is refused).

    Returns:
        The arrays that were written.

    Example
    -------
    >>> hepx.data.convert("tau3mu", ["ntuple.root"], "data/tau3mu")  # doctest: +SKIP
    """
    from hepx.atomic import check_output
    from hepx.data.dataset import is_dataset_dir

    kind = get_kind(kind)
    check_output(out_dir, overwrite=overwrite, is_ours=is_dataset_dir, what="output directory")
    options = kind.reader_options(reader_options)
    items = kind.input_items(inputs)
    tasks = [(kind.name, item, i, options) for i, item in enumerate(items)]
    parts = list(executor(convert_one, tasks)) if executor else [convert_one(t) for t in tasks]
    arrays = concat_arrays(parts)
    reports = [p.meta.pop("report", {}) for p in parts]
    arrays.meta.pop("report", None)
    sources = [[str(p) for p in kind.item_paths(it)] for it in items]
    save_arrays(
        arrays,
        out_dir,
        extra_manifest={
            "source_files": [s if len(s) > 1 else s[0] for s in sources],
            "reports": reports,
            "reader_options": options,
        },
    )
    return arrays


def convert_one(task: tuple[str, Any, int, Mapping[str, Any]]) -> PointCloudArrays:
    """Convert one input ``(kind, item, index, options)``: the unit of parallel work."""
    name, item, index, options = task
    kind = get_kind(name)
    events = kind.read(item, options)
    arrays = kind.to_arrays(events, source_file=index)
    arrays.meta["report"] = dict(events.attrs.get("hepx_report", {})) if events.attrs else {}
    return arrays
