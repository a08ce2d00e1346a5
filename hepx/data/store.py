"""The on-disk format of cached point-cloud datasets, without torch: manifests, flat arrays,
writing (atomically) and reading them, and seeded splits. :mod:`hepx.data.dataset` builds the
PyG dataset over it; conversion needs only this module, so ``hepx convert`` never imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepx.atomic import atomic_dir
from hepx.errors import InputError

FORMAT = "hepx-pointcloud"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"

#: Per-point fields every dataset has, and those only some kinds have.
POINT_FIELDS = ("pos", "x", "node_label", "hit_index")
OPTIONAL_POINT_FIELDS = ("track_ids", "node_dir")
SAMPLE_FIELDS = ("y", "event_id", "source_file")


@dataclass
class PointCloudArrays:
    """Flat columnar point clouds: ``ptr`` offsets plus per-point and per-sample arrays.

    Attributes
    ----------
    ptr : np.ndarray, shape [S + 1]
        Sample ``i`` owns points ``ptr[i]:ptr[i + 1]``.
    point : dict[str, np.ndarray]
        Per-point arrays with first dimension N = ``ptr[-1]``.
    sample : dict[str, np.ndarray]
        Per-sample arrays with first dimension S.
    meta : dict
        ``kind``, ``pos_dim``, ``x_dim``, ``coords``, ``period``, ``x_names`` ...
    """

    ptr: np.ndarray
    point: dict[str, np.ndarray]
    sample: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_points = int(self.ptr[-1]) if len(self.ptr) else 0
        n_samples = len(self.ptr) - 1
        for name, arr in self.point.items():
            if len(arr) != n_points:
                raise InputError(f"point field '{name}' has {len(arr)} rows, expected {n_points}")
        for name, arr in self.sample.items():
            if len(arr) != n_samples:
                raise InputError(f"sample field '{name}' has {len(arr)} rows, expected {n_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.ptr) - 1

    @property
    def num_points(self) -> int:
        return int(self.ptr[-1])


def save_arrays(
    arrays: PointCloudArrays,
    out_dir: str | os.PathLike,
    *,
    extra_manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``arrays`` as a dataset directory, atomically (temporary name, renamed at the end)."""
    from hepx.data.writer import DatasetPart

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        part = DatasetPart(tmp / ".parts" / "00000")
        part.append(arrays)
        part.close(arrays.meta.get("report"))
        write_dataset(tmp, [part.directory], extra_manifest=extra_manifest)
    return out_dir


def write_dataset(
    directory: Path, parts: Sequence[Path], *, extra_manifest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Assemble dataset parts (:mod:`hepx.data.writer`) into ``directory``'s ``arrays.npz`` and
    ``manifest.json``, then remove the parts; returns the manifest."""
    import shutil

    from hepx.data.writer import write_npz

    summary = write_npz(parts, directory / ARRAYS)
    for part in parts:
        shutil.rmtree(part)
    with contextlib.suppress(OSError):  # the parts' folder, when now empty
        Path(parts[0]).parent.rmdir()
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **summary["meta"],
        "num_samples": summary["num_samples"],
        "num_points": summary["num_points"],
        "num_positive": summary["num_positive"],
        "point_fields": summary["point_fields"],
        "sample_fields": summary["sample_fields"],
        "reports": summary["reports"],
        **(dict(extra_manifest) if extra_manifest else {}),
        "fingerprint": file_fingerprint(directory / ARRAYS),
    }
    text = json.dumps(manifest, indent=2, default=_json_default) + "\n"
    (directory / MANIFEST).write_text(text)
    return manifest


def file_fingerprint(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """``sha256:<hex>`` of a file's content, read in chunks: what a trained run records of
    its dataset, so that a run is never taken for one trained on other data."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a dataset directory written by hepx (its manifest says so)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path,)):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and check a dataset's ``manifest.json``."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise InputError(f"{directory}: no such dataset directory (create one with `hepx convert`)")
    if not path.exists():
        raise InputError(
            f"{directory}: not a hepx dataset (no {MANIFEST}; create one with `hepx convert`)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: corrupted manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: a manifest is a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if int(manifest.get("version", -1)) > FORMAT_VERSION:
        raise InputError(
            f"{path}: dataset format version {manifest['version']} is newer than this hepx "
            f"supports ({FORMAT_VERSION}); upgrade hepx"
        )
    for key in ("point_fields", "sample_fields"):
        if not isinstance(manifest.get(key), dict):
            raise InputError(f"{path}: a damaged manifest: no '{key}' mapping; convert again")
    for key in ("kind", "pos_dim"):
        if key not in manifest:
            raise InputError(f"{path}: a damaged manifest: no '{key}'; convert again")
    return manifest


def load_arrays(directory: str | os.PathLike) -> PointCloudArrays:
    """Load a dataset directory into :class:`PointCloudArrays` (no pickle)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    try:
        with np.load(directory / ARRAYS, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise InputError(f"{directory}: missing {ARRAYS}") from None
    except Exception as err:
        raise InputError(
            f"{directory / ARRAYS}: unreadable or corrupted ({type(err).__name__}: {err})"
        ) from None
    missing = [
        k for k in ("ptr", *manifest["point_fields"], *manifest["sample_fields"]) if k not in data
    ]
    if missing:
        raise InputError(f"{directory / ARRAYS}: missing arrays {', '.join(missing)}")
    _check_finite(directory / ARRAYS, data, manifest["point_fields"])
    meta = {
        k: v
        for k, v in manifest.items()
        if k not in ("format", "version", "point_fields", "sample_fields")
    }
    return PointCloudArrays(
        ptr=data["ptr"],
        point={k: data[k] for k in manifest["point_fields"]},
        sample={k: data[k] for k in manifest["sample_fields"]},
        meta=meta,
    )


def _check_finite(path: Path, data: Mapping[str, np.ndarray], fields: Sequence[str]) -> None:
    """Refuse a dataset whose float point fields hold NaN or infinities (hepx's readers never
    write them: the file was changed after conversion), naming the field and the count."""
    for name in fields:
        values = data[name]
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad = int(np.count_nonzero(~np.isfinite(values)))
            raise InputError(
                f"{path}: point field '{name}' holds {bad} NaN or infinite values; convert the "
                "input files again"
            )


def split_indices(
    labels: np.ndarray,
    fractions: Sequence[float],
    *,
    seed: int = 0,
    stratify: bool = True,
) -> list[np.ndarray]:
    """Indices of a seeded random split into ``fractions`` (normalised if they do not sum to 1).

    With ``stratify`` each label value is split separately, so every part keeps the class ratio.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) < 1 or np.any(fractions < 0) or fractions.sum() <= 0:
        raise InputError(
            f"split fractions must be non-negative numbers with a positive sum, got {list(fractions)}"
        )
    fractions = fractions / fractions.sum()
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = rng.permutation(n)
    if stratify:
        # Spread each class evenly over the sequence (its i-th member sits at quantile
        # (i + 0.5) / n_class), so every contiguous cut keeps the class ratio.
        key = np.empty(n)
        for value in np.unique(labels):
            members = order[labels[order] == value]
            key[members] = (np.arange(len(members)) + 0.5) / len(members)
        order = order[np.argsort(key[order], kind="stable")]
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    return [np.sort(part) for part in np.split(order, bounds[:-1])]
