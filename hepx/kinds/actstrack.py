"""ActsTrack: ACTS simulation output (``hits.root`` + particles), is there a Z -> ll?"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hepx.config.schema import Field
from hepx.errors import InputError
from hepx.kinds.base import DatasetKind, ScoringChunk

__all__ = ["ActsTrack", "actstrack_arrays", "arrays_meta"]

#: Particles files looked for next to a hits file, in this order.
PARTICLES_FILES = (
    "particles.root",
    "particles_simulation.root",
    "particles_initial.root",
    "fatras_particles_initial.root",
)
#: Volume ids of the ACTS Generic detector (the built-in simulation's): system and part.
GENERIC_DETECTOR_VOLUMES = {
    7: ("pixel", "endcap -z"),
    8: ("pixel", "barrel"),
    9: ("pixel", "endcap +z"),
    12: ("short strip", "endcap -z"),
    13: ("short strip", "barrel"),
    14: ("short strip", "endcap +z"),
    16: ("long strip", "endcap -z"),
    17: ("long strip", "barrel"),
    18: ("long strip", "endcap +z"),
}
#: Branches of the hits tree that scoring and conversion need (the reader checks the rest of
#: its required branches, ``hepx.io.acts.HIT_REQUIRED`` and the particle link; ``geometry_id``
#: is optional).
HIT_BRANCHES = ("event_id", "tx", "ty", "tz")


class ActsTrack(DatasetKind):
    """Hits (x, y, z) in mm without point features; truth: the hits of the Z -> ll legs.

    An input is a directory holding ``hits.root`` and a particles file, or a hits file with a
    particles file next to it. Scored files get a ``hits_importance`` friend of the input
    ``hits`` tree (one entry per hit entry) and a per-event ``tracks`` tree.
    """

    name = "actstrack"
    title = "ActsTrack"
    pos_dim = 3
    x_dim = 0
    scorable = True
    has_tracks = True
    experiment = ("ACTS", "Simulation", "ATLAS", "(2 T)")
    profile_groups = ("volume_id", "layer_id")
    reader_schema: ClassVar[dict[str, Field]] = {
        "hits_tree": Field("str", "hits", doc="name of the hits TTree"),
        "particles_tree": Field("str", "particles", doc="name of the particles TTree"),
        "tracks_per_event": Field("posint", 10, nullable=True, doc="tracks kept (null: all)"),
        "min_track_hits": Field("nonnegint", 3, doc="hits a particle needs to be a track"),
        "min_lepton_hits": Field("nonnegint", 3, doc="hits each Z lepton needs"),
        "z_mass": Field("posnumber", 91.1876, doc="GeV"),
        "mass_window": Field("posnumber", 2.0, doc="|m_ll - m_Z| of a signal pair, GeV"),
        "seed": Field("int", 0, doc="seed of the track sampling"),
        "step_size": Field(
            "size", "100 MB", doc="chunk of whole events: hits-tree entries or memory"
        ),
        "nonfinite": Field(
            "str", "error", choices=("error", "drop"), doc="NaN/inf in a hit's or particle's values"
        ),
    }

    def reader(self):
        from hepx.io import read_acts

        return read_acts

    def input_items(self, inputs: Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
        """Directories or hits files -> ``(hits, particles)`` pairs."""
        from hepx.kinds.files import describe_file, is_cms_ntuple

        if not inputs:
            raise InputError("no input files given")
        pairs = []
        for item in map(Path, inputs):
            hits = item / "hits.root" if item.is_dir() else item
            if not hits.exists():
                raise InputError(
                    f"{hits}: no such file (an ActsTrack input is a directory with hits.root "
                    "and particles.root, or a hits file)"
                )
            if is_cms_ntuple(hits):
                raise InputError(f"{hits} is {describe_file(hits)}, not ACTS hits (actstrack)")
            particles = next(
                (hits.parent / c for c in PARTICLES_FILES if (hits.parent / c).exists()), None
            )
            if particles is None:
                what = describe_file(hits)
                if "(actstrack)" not in what:  # say what the file is, not what is missing
                    raise InputError(
                        f"{hits} is {what}; expected ACTS hits (a TTree 'hits', with "
                        f"{PARTICLES_FILES[0]} next to it)"
                    )
                raise InputError(
                    f"{hits.parent}: no particles file next to {hits.name} "
                    f"(looked for {', '.join(PARTICLES_FILES)})"
                )
            pairs.append((hits, particles))
        return pairs

    def item_paths(self, item: tuple[Path, Path]) -> list[Path]:
        return [Path(item[0]), Path(item[1])]

    def output_name(self, item: tuple[Path, Path]) -> str:
        hits = Path(item[0])
        return hits.parent.name if hits.stem == "hits" and hits.parent.name else hits.stem

    def absolute(self, item: tuple[Path, Path]) -> tuple[Path, Path]:
        return (Path(item[0]).resolve(), Path(item[1]).resolve())

    def read(self, item: tuple[Path, Path], options: Mapping[str, Any]):
        return self.reader()(item[0], item[1], **options)

    def read_chunks(
        self, item: tuple[Path, Path], options: Mapping[str, Any], report: dict[str, Any]
    ) -> Iterator[Any]:
        """Whole events, about ``step_size`` hits-tree entries at a time, in the order of
        :func:`hepx.io.read_acts` (:class:`hepx.io.acts.ActsChunks`)."""
        from hepx.io.acts import ActsChunks

        chunks = ActsChunks(item[0], item[1], **options)
        yield from chunks.events()  # datasets and scores need no Lorentz algebra (vector)
        chunks.check_kept()
        report.update(chunks.report)

    def simulate(self, out: Path, *, events: int, seed: int, **options: Any) -> list[Path]:
        """:func:`hepx.sim.simulate_actstrack` (2 T unless ``bfield`` is given)."""
        from hepx.sim import simulate_actstrack

        simulate_actstrack(out, events=events, seed=seed, **options)
        return [Path(out)]

    def check_input(self, item: tuple[Path, Path], options: Mapping[str, Any]) -> None:
        from hepx.io.rootfile import open_tree, require_branches

        tree = open_tree(item[0], options.get("hits_tree", "hits"))
        require_branches(tree, HIT_BRANCHES, what="ACTS hits")

    def to_arrays(self, events, *, source_file: int = 0):
        return actstrack_arrays(events, source_file=source_file)

    def matches(self, events) -> bool:
        fields = set(events.fields)
        return "tracks" in fields and {"x", "y", "z", "track"} <= set(events.hits.fields)

    def file_friend(self, item: tuple[Path, Path], options: Mapping[str, Any]):
        from hepx.io.rootfile import open_tree
        from hepx.post.outputs import FriendLayout

        tree = open_tree(item[0], options.get("hits_tree", "hits"))
        return FriendLayout(event_id=tree["event_id"].array(library="np"))

    def scoring_chunks(
        self, item: tuple[Path, Path], options: Mapping[str, Any], chunk_entries: int
    ) -> Iterator[ScoringChunk]:
        """Whole events, about the reader's ``step_size`` hits-tree entries at a time
        (``chunk_entries`` counts Tau3Mu entries and is not used here), as :meth:`read_chunks`
        gives them; ``n_entries`` is the hits-tree entries of the chunk's events. The writer
        holds the friend layout of the whole file (:meth:`file_friend`)."""
        from hepx.io.acts import ActsChunks

        chunks = ActsChunks(item[0], item[1], **options)
        for events, n_entries in chunks.pieces():
            kept = events if len(events) else None
            yield ScoringChunk(events=kept, friend=None, n_entries=n_entries)
        chunks.check_kept()

    def file_info(self, item: tuple[Path, Path], options: Mapping[str, Any]) -> dict[str, int]:
        from hepx.io.rootfile import open_tree

        return {"hits_in_file": open_tree(item[0], options.get("hits_tree", "hits")).num_entries}

    def annotate(self, events, importance, *, sigma=None, k=None):
        """``hits.importance``, the per-track importance (mean, max, top-k share) and, with an
        LRI-Gaussian ``sigma [N, 3, 3]``, ``hits.axis_angle``."""
        import awkward as ak

        from hepx.kinds.arrays import flat
        from hepx.post.physics import DEFAULT_TOPK, attach_importance, axis_angles, track_importance

        out = attach_importance(events, importance)
        ti = track_importance(out, k=DEFAULT_TOPK if k is None else k)
        tracks = out.tracks
        for field, key in (("importance", "mean"), ("importance_max", "max")):
            tracks = ak.with_field(tracks, ti[key], field)
        tracks = ak.with_field(tracks, ti["topk"], "importance_topk")
        out = ak.with_field(out, tracks, "tracks")
        if sigma is None:
            return out
        direction = np.stack([flat(out.hits[c], np.float64) for c in ("px", "py", "pz")], 1)
        sig = np.asarray(sigma)
        if sig.ndim != 3 or len(sig) != len(direction):
            raise InputError(
                f"sigma has shape {sig.shape}, expected [{len(direction)}, 3, 3] (one per hit)"
            )
        angle = axis_angles(sig, direction).astype(np.float32)
        hits = ak.with_field(out.hits, ak.unflatten(angle, ak.num(out.hits, axis=1)), "axis_angle")
        return ak.with_field(out, hits, "hits")

    def group_label(self, values: Mapping[str, int]) -> str:
        """``"pixel barrel, layer 2"`` for the Generic detector's volumes (ACTS layer ids
        count 2, 4, 6, ...: layer n is id 2n); other volumes keep their ids."""
        rest = dict(values)
        parts = []
        volume = rest.pop("volume_id", None)
        if volume is not None:
            system = GENERIC_DETECTOR_VOLUMES.get(volume)
            parts.append(" ".join(system) if system else f"volume {volume}")
        layer = rest.pop("layer_id", None)
        if layer is not None:
            parts.append(f"layer {layer // 2}" if layer % 2 == 0 else f"layer id {layer}")
        parts += [f"{name} {value}" for name, value in rest.items()]
        return ", ".join(parts)

    def robustness_groups(self, model: Any, pos_dim: int) -> list[Any]:
        from hepx.explain.metric.robustness import E3, Permutation, RotationZ, is_e3_invariant

        return [Permutation(), RotationZ(), *([E3()] if is_e3_invariant(model) else [])]


def arrays_meta() -> dict:
    """The dataset metadata of ActsTrack point clouds: hit (x, y, z) in mm, no point features
    (a new dict each call)."""
    return {
        "kind": "actstrack",
        "pos_dim": 3,
        "x_dim": 0,
        "coords": ["x", "y", "z"],
        "pos_unit": "mm",
        "period": [None, None, None],
        "x_names": [],
    }


def actstrack_arrays(events, *, source_file: int = 0):
    """ActsTrack events -> point clouds: ``pos`` = hit (x, y, z) in mm, no point features,
    plus ``track_ids`` and ``node_dir`` (unit true momentum direction at each hit).

    Example
    -------
    >>> arrays = actstrack_arrays(hepx.io.read_acts("hits.root", "particles.root"))  # doctest: +SKIP
    >>> arrays.point["pos"].shape  # doctest: +SKIP
    (12345, 3)
    """
    from hepx.data.store import PointCloudArrays
    from hepx.kinds.arrays import event_fields, flat, offsets

    hits = events.hits
    pos = np.stack([flat(hits.x), flat(hits.y), flat(hits.z)], axis=1).astype(np.float32)
    mom = np.stack([flat(hits.px), flat(hits.py), flat(hits.pz)], axis=1).astype(np.float64)
    norm = np.linalg.norm(mom, axis=1, keepdims=True)
    node_dir = np.divide(mom, norm, out=np.zeros_like(mom), where=norm > 0).astype(np.float32)
    return PointCloudArrays(
        ptr=offsets(events, "hits"),
        point={
            "pos": pos,
            "x": np.zeros((len(pos), 0), dtype=np.float32),
            "node_label": flat(hits.node_label, np.int8),
            "hit_index": flat(hits.hit_index, np.int64),
            "track_ids": flat(hits.track, np.int32),
            "node_dir": node_dir,
        },
        sample=event_fields(events, source_file),
        meta=arrays_meta(),
    )
