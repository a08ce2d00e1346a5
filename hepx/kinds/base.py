"""What every dataset kind knows: its reader, its arrays, its input checks, its output layout.

A *dataset kind* (ActsTrack, Tau3Mu, generic point clouds) ties together the pieces that
depend on where the data come from:

* reading: the reader function and the schema of its options (:attr:`DatasetKind.reader_schema`),
  how command-line inputs become readable items (:meth:`DatasetKind.input_items`), and a check
  that an input is of this kind (:meth:`DatasetKind.check_input`);
* arrays: reader events -> flat point clouds (:meth:`DatasetKind.to_arrays`);
* scoring ROOT files: how a file is read in chunks and how the importance is written back as a
  friend of the input (:meth:`DatasetKind.scoring_chunks`, :meth:`DatasetKind.file_friend`);
* physics output and plots: :meth:`DatasetKind.annotate`, the experiment label, the default
  grouping of the per-layer profile and the symmetry groups of the robustness checks.

Kinds are looked up by name with :func:`hepx.kinds.get_kind`; code elsewhere asks the kind
instead of comparing names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hepx.config.schema import Schema, validate
from hepx.errors import InputError

if TYPE_CHECKING:
    import awkward as ak

    from hepx.data.store import PointCloudArrays

__all__ = ["DatasetKind", "ScoringChunk"]

#: A readable input: one path, or (for ActsTrack) a (hits, particles) pair of paths.
Item = Any


@dataclass
class ScoringChunk:
    """One piece of an input file for ``hepx score``.

    Attributes:
        events: reader events of the chunk (``None``: no event passed the selection).
        friend: the friend-tree layout of this chunk (Tau3Mu), ``None`` when the writer holds
            the file's layout (ActsTrack).
        n_entries: input tree entries the chunk covers (for progress).
        finish: applied to the scored events before they are written (e.g. restoring the
            input's event ids), or ``None``.
    """

    events: ak.Array | None
    friend: Any
    n_entries: int
    finish: Callable[[ak.Array], ak.Array] | None = None


class DatasetKind:
    """Base class of the dataset kinds; subclasses set the class attributes and methods.

    Attributes:
        name: the kind's name in configs, manifests and on the command line.
        title: the name in prose and plots.
        pos_dim, x_dim: coordinates and features per point (``None``: given by the data).
        scorable: ``hepx score`` can run a model of this kind over its input files.
        has_tracks: the reader's events carry ``tracks`` (per-track importance, track plots).
        experiment: ``(experiment, label, mplhep style, right label)`` of the plots.
        profile_groups: hit fields of the default per-layer profile.
        figsize: default figure size of single plots.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    pos_dim: ClassVar[int | None] = None
    x_dim: ClassVar[int | None] = None
    scorable: ClassVar[bool] = False
    has_tracks: ClassVar[bool] = False
    experiment: ClassVar[tuple[str, str, str, str]] = ("", "Simulation", "CMS", "")
    profile_groups: ClassVar[tuple[str, ...]] = ()
    figsize: ClassVar[tuple[float, float]] = (8.5, 7.0)
    reader_schema: ClassVar[Schema] = {}

    def __repr__(self) -> str:
        return f"<dataset kind {self.name}>"

    # ------------------------------------------------------------------ reading

    def reader(self) -> Callable[..., ak.Array]:
        """The reader function (``hepx.io.read_*``)."""
        raise NotImplementedError

    def reader_options(self, options: Mapping[str, Any] | None, *, where: str = "") -> dict:
        """Check reader options against :attr:`reader_schema`; returns only the given keys.

        Example
        -------
        >>> from hepx.kinds import get_kind
        >>> get_kind("tau3mu").reader_options({"min_hits": 2})
        {'min_hits': 2}
        """
        where = where or f"reader options for {self.name}"
        given = dict(options or {})
        checked = validate(self.reader_schema, given, where=where)
        return {k: checked[k] for k in given}

    def input_items(self, inputs: Sequence[str | os.PathLike]) -> list[Item]:
        """Command-line inputs -> readable items (default: one existing file each)."""
        if not inputs:
            raise InputError("no input files given")
        items = []
        for p in inputs:
            p = Path(p)
            if p.is_dir():
                raise InputError(f"{p}: is a directory; {self.title} inputs are files")
            items.append(p)
        return items

    def item_paths(self, item: Item) -> list[Path]:
        """The files of an item."""
        return [Path(item)]

    def output_name(self, item: Item) -> str:
        """Base name of the outputs written for ``item``."""
        return Path(item).stem

    def absolute(self, item: Item) -> Item:
        """``item`` with absolute paths (for workers that run in another directory)."""
        return Path(item).resolve()

    def read(self, item: Item, options: Mapping[str, Any]) -> ak.Array:
        """Reader events of one item."""
        return self.reader()(item, **options)

    def read_chunks(
        self, item: Item, options: Mapping[str, Any], report: dict[str, Any]
    ) -> Iterator[ak.Array]:
        """Reader events of one item, one chunk at a time (what ``hepx convert`` streams);
        ``report`` receives the reader's counts when the item is done. The base class reads
        the item whole (one chunk)."""
        events = self.read(item, options)
        report.update(events.attrs.get("hepx_report", {}) if events.attrs else {})
        yield events

    def check_input(self, item: Item, options: Mapping[str, Any]) -> None:
        """Raise :class:`InputError` if ``item`` is not an input of this kind."""

    def simulate(self, out: Path, *, events: int, seed: int, **options: Any) -> list[Path]:
        """Write a sample with the built-in simulation into ``out``; returns the inputs of
        ``hepx convert`` / ``hepx score`` for it."""
        raise InputError(f"hepx has no simulation of {self.title} data")

    # ------------------------------------------------------------------ arrays

    def to_arrays(self, events: ak.Array, *, source_file: int = 0) -> PointCloudArrays:
        """Reader events -> flat point-cloud arrays (:class:`hepx.data.PointCloudArrays`)."""
        raise NotImplementedError

    def matches(self, events: ak.Array) -> bool:
        """Whether reader / annotated ``events`` are of this kind."""
        return False

    # ------------------------------------------------------------------ scoring and outputs

    def file_friend(self, item: Item, options: Mapping[str, Any]) -> Any:
        """The friend layout a writer holds for the whole file (``None``: per chunk)."""
        return None

    def scoring_chunks(
        self, item: Item, options: Mapping[str, Any], chunk_entries: int
    ) -> Iterator[ScoringChunk]:
        """The input read piece by piece for scoring."""
        raise InputError(f"{self.title} inputs cannot be scored from files")

    def file_info(self, item: Item, options: Mapping[str, Any]) -> dict[str, int]:
        """Counts of the input file recorded in the scoring manifest."""
        return {}

    def annotate(
        self, events: ak.Array, importance: Any, *, sigma: Any = None, k: Any = None
    ) -> ak.Array:
        """Events with ``hits.importance`` (and the kind's physics objects' importance)."""
        from hepx.post.physics import attach_importance

        return attach_importance(events, importance)

    def group_label(self, values: Mapping[str, int]) -> str:
        """How physicists name a detector group given by hit-field values (e.g. the keys of
        :func:`hepx.post.group_profile`); the base class lists ``field value`` pairs."""
        return ", ".join(f"{name} {value}" for name, value in values.items())

    # ------------------------------------------------------------------ checks

    def robustness_groups(self, model: Any, pos_dim: int) -> list[Any]:
        """Symmetry groups to test ``model``'s explanations under
        (:mod:`hepx.explain.metric.robustness`): permutations always; phi shifts on 2-D
        ``(eta, phi)`` data; rotations about the beam axis on 3-D data, and ``E(3)`` only for a
        model built to be ``E(3)`` invariant (:func:`~hepx.explain.metric.robustness.is_e3_invariant`)."""
        from hepx.explain.metric.robustness import (
            E3,
            Permutation,
            PhiShift,
            RotationZ,
            is_e3_invariant,
        )

        groups: list[Any] = [Permutation()]
        if pos_dim == 2:
            groups.append(PhiShift(axis=1))
        elif pos_dim == 3:
            groups.append(RotationZ())
            if is_e3_invariant(model):
                groups.append(E3())
        return groups
