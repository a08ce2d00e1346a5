"""From input files to cached point-cloud datasets: read with the kind's reader, flatten, save.

The per-kind work (reader, options, arrays) is the dataset kind's (:mod:`hepx.kinds`); this
module runs it over the inputs, here or on an executor, and writes one dataset directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from hepx.data.writer import DatasetPart
from hepx.kinds import KINDS, DatasetKind, get_kind

__all__ = ["KINDS", "convert", "convert_one"]

#: The folder of the per-input parts inside the dataset's temporary directory.
PARTS = ".parts"

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
) -> dict[str, Any]:
    """Read ``inputs`` with the reader of ``kind`` and write a dataset directory ``out_dir``.

    The inputs are read chunk by chunk (the reader's ``step_size``) and each chunk's point
    clouds go to disk before the next is read, so memory depends on the chunk size, not on the
    number of events (:mod:`hepx.data.writer`).

    Args:
        kind: ``"actstrack"`` (inputs: directories with hits.root + particles.root, or hits
            files), ``"tau3mu"`` (CMS muon ntuples) or ``"generic"`` (Parquet / ROOT point
            clouds), or a :class:`~hepx.kinds.DatasetKind`.
        inputs: the input files or directories.
        out_dir: the dataset directory, written atomically.
        reader_options: keyword arguments of the kind's reader (e.g. the ``reader:`` section of
            a YAML config); unknown keys and wrong types are refused before anything is read.
        executor: runs the per-input work (:func:`convert_one`), e.g. on dask; default: here.
            Workers write their part next to ``out_dir``, so they must see its file system.
        overwrite: replace whatever is at ``out_dir``; without it only a dataset directory
            hepx wrote may be replaced (a file, a link or another directory is refused).

    Returns:
        The dataset's manifest (``num_samples``, ``num_points``, ``num_positive``, ...).

    Example
    -------
    >>> hepx.data.convert("tau3mu", ["ntuple.root"], "data/tau3mu")["num_samples"]  # doctest: +SKIP
    """
    from hepx.atomic import atomic_dir, check_output
    from hepx.data.store import is_dataset_dir, write_dataset

    kind = get_kind(kind)
    check = partial(
        check_output, overwrite=overwrite, is_ours=is_dataset_dir, what="output directory"
    )
    check(out_dir)
    options = kind.reader_options(reader_options)
    items = kind.input_items(inputs)
    sources = [[str(p) for p in kind.item_paths(it)] for it in items]
    with atomic_dir(out_dir, check=check) as tmp:
        parts = [(tmp / PARTS / f"{i:05d}").resolve() for i in range(len(items))]
        tasks = [
            (kind.name, item, i, options, str(part))
            for i, (item, part) in enumerate(zip(items, parts, strict=True))
        ]
        if executor is not None:
            list(executor(convert_one, tasks))
        else:
            for task in tasks:
                convert_one(task)
        extra = {
            "source_files": [s if len(s) > 1 else s[0] for s in sources],
            "reader_options": options,
        }
        manifest = write_dataset(tmp, parts, extra_manifest=extra)
    return manifest


def convert_one(task: tuple[str, Any, int, Mapping[str, Any], str]) -> dict[str, Any]:
    """Convert one input ``(kind, item, index, options, part directory)`` into a dataset part
    (:class:`hepx.data.writer.DatasetPart`), chunk by chunk: the unit of parallel work.
    Returns the part's summary."""
    name, item, index, options, part_dir = task
    kind = get_kind(name)
    part = DatasetPart(part_dir)
    report: dict[str, Any] = {}
    for events in kind.read_chunks(item, options, report):
        part.append(kind.to_arrays(events, source_file=index))
    return part.close(report)
