"""Writing a dataset directory chunk by chunk: memory bounded by the chunk, not the input.

A conversion appends the point clouds of each reader chunk to a *part* (one per input file):
a directory of raw per-field files (``<field>.bin``, C order) and ``part.json`` (dtypes,
trailing shapes, counts, metadata, the reader's report). When every input is done the parts
are assembled, field by field and block by block, into the dataset's ``arrays.npz`` (the
layout :func:`numpy.savez` writes, uncompressed, with fixed zip timestamps so that the same
data give the same bytes and the same fingerprint). Nothing of the whole dataset is ever
held in memory; parts are written where the executor's workers can reach them.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hepx.errors import InputError

__all__ = ["DatasetPart", "write_npz"]

PART_FILE = "part.json"
#: Bytes copied at a time when parts are assembled.
COPY_BLOCK = 1 << 24
#: The zip timestamp of every member (the earliest a zip can hold): reproducible files.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Metadata that must agree between the parts of one dataset.
_SHARED_META = ("kind", "pos_dim", "x_dim", "coords", "period", "x_names")


class DatasetPart:
    """Point-cloud chunks of one input, appended to raw files in ``directory``.

    Example
    -------
    >>> part = DatasetPart(tmp / "part0")                                # doctest: +SKIP
    >>> for events in chunks:                                            # doctest: +SKIP
    ...     part.append(kind.to_arrays(events, source_file=0))
    >>> part.close(report)                                               # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True)
        self.fields: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, Any] | None = None
        self.num_samples = 0
        self.num_points = 0
        self.num_positive = 0

    def append(self, arrays: Any) -> None:
        """Append :class:`~hepx.data.PointCloudArrays` (same kind and fields as before)."""
        if self.meta is None:
            self.meta = {k: v for k, v in arrays.meta.items() if k != "report"}
            self.fields = _field_specs(arrays)
        else:
            _check_same(self.meta, arrays.meta, self.directory)
            if _field_specs(arrays).keys() != self.fields.keys():
                raise InputError(f"{self.directory}: a chunk with other fields than the first")
        counts = np.diff(arrays.ptr).astype(np.int64)
        columns = {"counts": counts, **arrays.point, **arrays.sample}
        for name, spec in self.fields.items():
            value = np.ascontiguousarray(columns[name], dtype=spec["dtype"])
            if list(value.shape[1:]) != spec["shape"]:
                raise InputError(
                    f"field '{name}' has shape {list(value.shape[1:])} in one chunk and "
                    f"{spec['shape']} before"
                )
            with open(self.directory / f"{name}.bin", "ab") as fh:
                fh.write(value.tobytes())
            spec["rows"] += len(value)
        self.num_samples += arrays.num_samples
        self.num_points += arrays.num_points
        self.num_positive += int((np.asarray(arrays.sample["y"]) > 0).sum())

    def close(self, report: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write ``part.json``; returns it (the part's summary)."""
        if self.meta is None:
            raise InputError(f"{self.directory}: no sample was written to this part")
        summary = {
            "meta": self.meta,
            "fields": self.fields,
            "num_samples": self.num_samples,
            "num_points": self.num_points,
            "num_positive": self.num_positive,
            "report": dict(report or {}),
        }
        (self.directory / PART_FILE).write_text(json.dumps(summary, default=_json_default))
        return summary


def _field_specs(arrays: Any) -> dict[str, dict[str, Any]]:
    """``name -> {dtype, shape, per, rows}`` of a chunk: ``counts`` (points per sample, from
    which ``ptr`` is rebuilt), then the point and the sample fields, in that order."""
    specs = {"counts": {"dtype": "int64", "shape": [], "per": "sample", "rows": 0}}
    for per, columns in (("point", arrays.point), ("sample", arrays.sample)):
        for name, value in columns.items():
            value = np.asarray(value)
            specs[name] = {"dtype": value.dtype.str, "shape": list(value.shape[1:])}
            specs[name].update(per=per, rows=0)
    return specs


def _check_same(meta: Mapping[str, Any], other: Mapping[str, Any], where: Any) -> None:
    for key in _SHARED_META:
        if meta.get(key) != other.get(key):
            raise InputError(
                f"{where}: cannot combine inputs with different {key}: {meta.get(key)} and "
                f"{other.get(key)}"
            )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_part(directory: Path) -> dict[str, Any]:
    """A closed part's summary (``part.json``)."""
    return json.loads((Path(directory) / PART_FILE).read_text())


def write_npz(parts: Sequence[Path], out: Path) -> dict[str, Any]:
    """Assemble ``parts`` (in order) into the npz file ``out``; returns the dataset summary:
    ``meta``, ``point_fields``, ``sample_fields``, ``num_samples``, ``num_points``,
    ``num_positive``, ``reports``. Memory: one copy block."""
    if not parts:
        raise InputError("nothing to write: no input produced any sample")
    summaries = [read_part(p) for p in parts]
    first = summaries[0]
    for part, summary in zip(parts[1:], summaries[1:], strict=True):
        _check_same(first["meta"], summary["meta"], part)
        if summary["fields"].keys() != first["fields"].keys():
            raise InputError(f"{part}: other fields than {parts[0]}")
    fields = first["fields"]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        ptr_shape = (1 + _rows(summaries, "counts"),)
        _write_member(zf, "ptr", np.dtype(np.int64), ptr_shape, _ptr_blocks(parts))
        for name, spec in fields.items():
            if name == "counts":
                continue
            shape = (_rows(summaries, name), *spec["shape"])
            blocks = _file_blocks([p / f"{name}.bin" for p in parts])
            _write_member(zf, name, np.dtype(spec["dtype"]), shape, blocks)
    described: dict[str, dict[str, list]] = {"point": {}, "sample": {}}
    for name, spec in fields.items():
        if name != "counts":
            described[spec["per"]][name] = [np.dtype(spec["dtype"]).name, spec["shape"]]
    return {
        "meta": first["meta"],
        "point_fields": described["point"],
        "sample_fields": described["sample"],
        "num_samples": sum(s["num_samples"] for s in summaries),
        "num_points": sum(s["num_points"] for s in summaries),
        "num_positive": sum(s["num_positive"] for s in summaries),
        "reports": [s["report"] for s in summaries],
    }


def _rows(summaries: Sequence[Mapping[str, Any]], name: str) -> int:
    return sum(int(s["fields"][name]["rows"]) for s in summaries)


def _write_member(zf: zipfile.ZipFile, name: str, dtype: np.dtype, shape, blocks) -> None:
    """One ``.npy`` member: numpy's header for ``shape``/``dtype``, then the raw blocks."""
    info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
    header["shape"] = tuple(int(s) for s in shape)
    expected = int(np.prod(shape)) * dtype.itemsize
    written = 0
    with zf.open(info, "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        for block in blocks:
            fh.write(block)
            written += len(block)
    if written != expected:  # a part file shorter or longer than its summary says
        raise InputError(f"{name}: {written} bytes assembled, expected {expected}")


def _file_blocks(paths: Sequence[Path]) -> Iterator[bytes]:
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(COPY_BLOCK):
                yield block


def _ptr_blocks(parts: Sequence[Path]) -> Iterator[bytes]:
    """``ptr`` = 0 followed by the running sum of the points per sample, block by block."""
    yield np.zeros(1, np.int64).tobytes()
    total = 0
    for block in _file_blocks([p / "counts.bin" for p in parts]):
        ends = np.cumsum(np.frombuffer(block, dtype=np.int64)) + total
        if len(ends):
            total = int(ends[-1])
        yield ends.tobytes()
