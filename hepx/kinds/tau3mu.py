"""Tau3Mu: CMS endcap-muon ntuples (``Ntuplizer/MuonTrackTree``), is there a tau -> 3 mu?"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from hepx.config.schema import Field
from hepx.kinds.base import DatasetKind, ScoringChunk

__all__ = ["MUON_TREE", "Tau3Mu", "arrays_meta", "tau3mu_arrays"]

MUON_TREE = "Ntuplizer/MuonTrackTree"
#: The muon detector technologies of ``mu_hit_type`` (the reader's ``technology``).
TECHNOLOGIES = {0: "DT", 1: "CSC", 2: "RPC", 3: "GEM", 4: "ME0"}

#: The reader's default hit selection (``hepx.io.cms_muon.DEFAULT_FILTERS``: station 1, no
#: neighbour-sector copies, no DT hits), repeated here so that the schema needs no ROOT import;
#: tests/kinds/test_kinds.py checks that the two agree.
DEFAULT_FILTERS: tuple[dict[str, Any], ...] = (
    {"branch": "mu_hit_station", "op": "==", "value": 1},
    {"branch": "mu_hit_neighbor", "op": "==", "value": 0},
    {"branch": "mu_hit_type", "op": "!=", "value": 0},
)


class Tau3Mu(DatasetKind):
    """Muon hits at (eta, phi [rad]) with phi periodic and the bend as the point feature;
    truth: the hits of the three muons from the tau decay.

    Scored files get a ``mu_hit_importance`` friend of the input muon tree (one entry per
    entry, a jagged importance aligned with the ``mu_hit_*`` vectors), read in chunks.
    """

    name = "tau3mu"
    title = "Tau3Mu"
    pos_dim = 2
    x_dim = 1
    scorable = True
    experiment = ("CMS", "Phase-2 Simulation", "CMS", "(14 TeV)")
    profile_groups = ("station", "ring")
    figsize = (10.0, 8.0)
    reader_schema: ClassVar[dict[str, Field]] = {
        "tree": Field("str", MUON_TREE, doc="path of the TTree"),
        "filters": Field(
            "list",
            DEFAULT_FILTERS,
            nullable=True,
            doc="hit selection, {branch, op, value} (null or []: every hit)",
        ),
        "truth_branch": Field("str", "mu_hit_truth_tau", nullable=True, doc="per-hit truth"),
        "label_branch": Field("str", "n_gen_tau", nullable=True, doc="per-event signal flag"),
        "event_id_branch": Field("str", None, nullable=True, doc="event number (null: entry)"),
        "min_hits": Field("nonnegint", 3, doc="selected hits an event needs"),
        "min_signal_hits": Field("nonnegint", 3, doc="selected signal hits a signal event needs"),
        "step_size": Field("size", "100 MB", doc="uproot read chunk"),
        "entry_start": Field("nonnegint", None, nullable=True, doc="first entry read"),
        "entry_stop": Field("nonnegint", None, nullable=True, doc="entry after the last read"),
        "nonfinite": Field(
            "str", "error", choices=("error", "drop"), doc="NaN/inf in a selected hit's values"
        ),
    }

    def reader(self):
        from hepx.io import read_cms_muon

        return read_cms_muon

    def simulate(self, out: Path, *, events: int, seed: int, **options: Any) -> list[Path]:
        """:func:`hepx.sim.simulate_tau3mu`."""
        from hepx.sim import simulate_tau3mu

        simulate_tau3mu(out, events=events, seed=seed, truth=False, **options)
        return [Path(out) / "ntuple.root"]

    def read_chunks(
        self, item: Path, options: Mapping[str, Any], report: dict[str, Any]
    ) -> Iterator[ak.Array]:
        """The ntuple ``step_size`` at a time (:class:`hepx.io.cms_muon.MuonChunks`)."""
        from hepx.io.cms_muon import MuonChunks

        chunks = MuonChunks(item, **options)
        yield from chunks
        chunks.check_kept()
        report.update(chunks.report)

    def check_input(self, item: Path, options: Mapping[str, Any]) -> None:
        """The hit branches of the point clouds (eta, phi, bend) must be there; the reader
        checks the rest of what the options need."""
        from hepx.io.cms_muon import HIT_FIELDS, USED_FIELDS
        from hepx.io.rootfile import open_tree, require_branches

        tree = open_tree(item, options.get("tree", MUON_TREE))
        used = [HIT_FIELDS[f] for f in USED_FIELDS]
        require_branches(tree, used, what="the Tau3Mu point clouds (CMS muon hits)")

    def to_arrays(self, events, *, source_file: int = 0):
        return tau3mu_arrays(events, source_file=source_file)

    def matches(self, events) -> bool:
        """Muon hits: (eta, phi) and bend, the fields every file gives (the chamber fields are
        optional branches), and no tracks."""
        return "tracks" not in events.fields and {"eta", "phi", "bend"} <= set(events.hits.fields)

    def scoring_chunks(
        self, item: Path, options: Mapping[str, Any], chunk_entries: int
    ) -> Iterator[ScoringChunk]:
        """``chunk_entries`` tree entries at a time (bounded memory); the friend layout of each
        chunk has one entry per tree entry, scored or not."""
        from hepx.io.cms_muon import MuonChunks
        from hepx.io.rootfile import open_tree
        from hepx.post.outputs import FriendLayout

        # Checks the options and the branches before any work, and warns once about missing
        # optional branches (the chunks below do not warn again).
        MuonChunks(item, **options)
        tree = open_tree(item, options.get("tree", MUON_TREE))
        id_branch = options.get("event_id_branch")
        opts = {k: v for k, v in options.items() if k not in ("entry_start", "entry_stop")}
        opts["event_id_branch"] = None  # event_id = entry number, mapped back in finish
        for a in range(0, tree.num_entries, chunk_entries):
            b = min(a + chunk_entries, tree.num_entries)
            ids = (
                tree[id_branch].array(entry_start=a, entry_stop=b, library="np").astype(np.int64)
                if id_branch
                else np.arange(a, b, dtype=np.int64)
            )
            layout = FriendLayout(event_id=ids, counts=_hit_counts(tree, a, b), entry_start=a)
            events = _read_or_none(item, a, b, opts)
            yield ScoringChunk(
                events=events,
                friend=layout,
                n_entries=b - a,
                finish=lambda scored, ids=ids, a=a: _restore_ids(scored, ids, a),
            )

    def file_info(self, item: Path, options: Mapping[str, Any]) -> dict[str, int]:
        from hepx.io.rootfile import open_tree

        return {"entries_in_file": open_tree(item, options.get("tree", MUON_TREE)).num_entries}

    def group_label(self, values: Mapping[str, int]) -> str:
        """``"station 1/ring 2"``, ``"CSC, sector 3"``: muon-system groups as physicists name
        them (technology from ``mu_hit_type``)."""
        parts = []
        for name, value in values.items():
            if name == "technology":
                parts.append(TECHNOLOGIES.get(value, f"technology {value}"))
            elif name == "endcap":
                parts.append("endcap +z" if value > 0 else "endcap -z")
            elif name == "ring" and parts and parts[-1].startswith("station"):
                parts[-1] += f"/ring {value}"
            else:
                parts.append(f"{name} {value}")
        return ", ".join(parts)

    def robustness_groups(self, model: Any, pos_dim: int) -> list[Any]:
        from hepx.explain.metric.robustness import Permutation, PhiShift

        return [Permutation(), PhiShift(axis=1)]


def _hit_counts(tree, start: int, stop: int) -> np.ndarray:
    if "n_mu_hit" in tree.keys():
        return tree["n_mu_hit"].array(entry_start=start, entry_stop=stop, library="np")
    return np.asarray(ak.num(tree["mu_hit_sim_eta"].array(entry_start=start, entry_stop=stop)))


def _read_or_none(path: Path, start: int, stop: int, options: Mapping[str, Any]):
    """The chunk's events (as :func:`hepx.io.read_cms_muon` returns them, without warning
    again about missing optional branches), or ``None`` when the selection keeps none."""
    from hepx.io.cms_muon import MuonChunks

    chunks = MuonChunks(path, entry_start=start, entry_stop=stop, warn_missing=False, **options)
    parts = list(chunks)
    if not parts:
        return None
    return chunks.finish(ak.concatenate(parts))


def _restore_ids(scored: ak.Array, ids: np.ndarray, start: int) -> ak.Array:
    """Scored chunk events: ``entry`` (tree entry) added, ``event_id`` from the input's ids."""
    entry = ak.to_numpy(scored.event_id).astype(np.int64)
    scored = ak.with_field(scored, entry, "entry")
    return ak.with_field(scored, ids[entry - start], "event_id")


def arrays_meta() -> dict:
    """The dataset metadata of Tau3Mu point clouds: (eta, phi [rad]) with phi periodic, the
    bend as the one feature (a new dict each call)."""
    return {
        "kind": "tau3mu",
        "pos_dim": 2,
        "x_dim": 1,
        "coords": ["eta", "phi"],
        "pos_unit": "rad",
        "period": [None, float(2 * np.pi)],
        "x_names": ["bend"],
    }


def tau3mu_arrays(events, *, source_file: int = 0):
    """Tau3Mu events -> point clouds: ``pos`` = (eta, phi [rad]) with phi periodic, ``x`` = bend.

    Example
    -------
    >>> arrays = tau3mu_arrays(hepx.io.read_cms_muon("ntuple.root"))  # doctest: +SKIP
    >>> arrays.meta["period"]  # doctest: +SKIP
    [None, 6.283185307179586]
    """
    from hepx.data.store import PointCloudArrays
    from hepx.kinds.arrays import event_fields, flat, offsets

    hits = events.hits
    pos = np.stack([flat(hits.eta), flat(hits.phi)], axis=1).astype(np.float32)
    return PointCloudArrays(
        ptr=offsets(events, "hits"),
        point={
            "pos": pos,
            "x": flat(hits.bend, np.float32)[:, None],
            "node_label": flat(hits.node_label, np.int8),
            "hit_index": flat(hits.hit_index, np.int64),
        },
        sample=event_fields(events, source_file),
        meta=arrays_meta(),
    )
