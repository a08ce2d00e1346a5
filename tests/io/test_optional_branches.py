"""Readers take what they need: files without the optional branches are read (the events lack
only those fields, the absence is reported once), files without a required branch are refused
with one line naming the file and the branch."""

import logging
import shutil

import acts_files as af
import awkward as ak
import cms_files as cf
import numpy as np
import pytest
import uproot

from hepx.cli import main
from hepx.errors import InputError
from hepx.io import read_acts, read_cms_muon
from hepx.io.cms_muon import MuonChunks
from hepx.kinds import detect_kind, get_kind

TREE = "Ntuplizer/MuonTrackTree"
CMS_OPTIONAL = ["mu_hit_sim_r", "mu_hit_sim_z"]


def _write_cms(path, counts, fields, per_event):
    """A muon tree in the producer's layout (shared ``n_mu_hit`` counter) holding only the
    ``mu_hit_*`` fields and per-event branches given."""
    hits = ak.zip({k: ak.unflatten(v, counts) for k, v in fields.items()})
    with uproot.recreate(path) as f:
        f.mktree(
            TREE,
            {"mu_hit": hits.type.content, **{k: v.dtype for k, v in per_event.items()}},
            counter_name=lambda c: "n_" + c,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        f[TREE].extend({"mu_hit": hits, **per_event})


def _optional_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "optional branch" in r.getMessage()]


@pytest.fixture(scope="module")
def cms_pair(tmp_path_factory):
    """The same events twice: a full ntuple and one without ``mu_hit_sim_r`` / ``_z``."""
    d = tmp_path_factory.mktemp("cms_optional")
    counts, fields, is_sig = cf.random_hits(np.random.default_rng(11), 50)
    n_gen_tau = {"n_gen_tau": is_sig.astype(np.int32)}
    _write_cms(d / "full.root", counts, fields, n_gen_tau)
    reduced = {k: v for k, v in fields.items() if k not in ("sim_r", "sim_z")}
    _write_cms(d / "reduced.root", counts, reduced, n_gen_tau)
    return d, counts, fields, is_sig


def test_cms_without_optional_branches_lacks_only_their_fields(cms_pair, caplog):
    d, *_ = cms_pair
    full = read_cms_muon(d / "full.root", min_signal_hits=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        events = read_cms_muon(d / "reduced.root", min_signal_hits=1)
    assert set(full.hits.fields) - set(events.hits.fields) == {"r", "z"}
    assert set(events.hits.fields) < set(full.hits.fields)
    for name in ("event_id", "label", "n_signal_hits"):
        assert events[name].tolist() == full[name].tolist()
    for name in events.hits.fields:
        assert events.hits[name].tolist() == full.hits[name].tolist(), name
    assert events.attrs["hepx_report"]["missing_optional_branches"] == CMS_OPTIONAL
    assert full.attrs["hepx_report"]["missing_optional_branches"] == []
    (message,) = _optional_warnings(caplog)
    assert "reduced.root" in message and "mu_hit_sim_r, mu_hit_sim_z" in message
    assert "hits.r" in message and "hits.z" in message
    assert detect_kind(events) is get_kind("tau3mu")


def test_cms_missing_optional_branches_are_reported_once_not_per_chunk(cms_pair, caplog):
    d, *_ = cms_pair
    with caplog.at_level(logging.WARNING):
        chunks = MuonChunks(d / "reduced.root", min_signal_hits=1, step_size=5)
        parts = list(chunks)
    assert len(parts) > 3
    assert len(_optional_warnings(caplog)) == 1
    assert chunks.report["missing_optional_branches"] == CMS_OPTIONAL


def test_tau3mu_scoring_chunks_warn_once(cms_pair, caplog):
    d, *_ = cms_pair
    tau = get_kind("tau3mu")
    tau.check_input(d / "reduced.root", {})
    with caplog.at_level(logging.WARNING):
        chunks = list(tau.scoring_chunks(d / "reduced.root", {"min_signal_hits": 1}, 10))
    assert len(chunks) == 5
    assert len(_optional_warnings(caplog)) == 1
    events = [c.events for c in chunks if c.events is not None]
    assert events and all("r" not in e.hits.fields for e in events)


def test_convert_tau3mu_without_optional_branches_gives_the_same_point_clouds(
    cms_pair, tmp_path, caplog
):
    d, *_ = cms_pair
    assert main(["convert", "tau3mu", str(d / "full.root"), "--out", str(tmp_path / "a")]) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        argv = ["convert", "tau3mu", str(d / "reduced.root"), "--out", str(tmp_path / "b")]
        assert main(argv) == 0
    assert len(_optional_warnings(caplog)) == 1
    _assert_same_dataset(tmp_path / "a", tmp_path / "b")


def _assert_same_dataset(a, b):
    with np.load(a / "arrays.npz") as x, np.load(b / "arrays.npz") as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_cms_required_branch_missing_is_one_line_naming_only_it(cms_pair, tmp_path, capsys):
    _, counts, fields, is_sig = cms_pair
    path = tmp_path / "no_bend.root"
    kept = {k: v for k, v in fields.items() if k not in ("bend", "sim_r")}
    _write_cms(path, counts, kept, {"n_gen_tau": is_sig.astype(np.int32)})
    with pytest.raises(InputError) as err:
        read_cms_muon(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "missing branch(es) mu_hit_bend for the Tau3Mu point clouds" in message
    assert "mu_hit_sim_r" not in message.split("(found")[0]  # optional: not missing
    assert main(["convert", "tau3mu", str(path), "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err
    assert line.startswith("hepx: error: ") and line.count("\n") == 1
    assert str(path) in line and "mu_hit_bend" in line


def test_cms_filters_decide_which_chamber_branches_are_required(cms_pair, tmp_path, caplog):
    d, counts, fields, is_sig = cms_pair
    path = tmp_path / "no_station.root"
    kept = {k: v for k, v in fields.items() if k not in ("station", "ring", "chamber")}
    _write_cms(path, counts, kept, {"n_gen_tau": is_sig.astype(np.int32)})
    with pytest.raises(InputError, match=r"missing branch\(es\) mu_hit_station for"):
        read_cms_muon(path)  # the default filters cut on the station
    with pytest.raises(InputError, match=r"missing branch\(es\) mu_hit_sim_r for"):
        read_cms_muon(
            d / "reduced.root", filters=[{"branch": "mu_hit_sim_r", "op": ">", "value": 0}]
        )
    with caplog.at_level(logging.WARNING):
        events = read_cms_muon(path, filters=[], min_signal_hits=1)
    missing = ["mu_hit_station", "mu_hit_ring", "mu_hit_chamber"]
    assert events.attrs["hepx_report"]["missing_optional_branches"] == missing
    assert not {"station", "ring", "chamber"} & set(events.hits.fields)
    (message,) = _optional_warnings(caplog)
    assert "mu_hit_station, mu_hit_ring, mu_hit_chamber" in message


def test_cms_missing_label_branch_is_reported(cms_pair, tmp_path, caplog):
    _, counts, fields, _ = cms_pair
    path = tmp_path / "no_label.root"
    _write_cms(path, counts, fields, {"event": np.arange(len(counts), dtype=np.int64)})
    with caplog.at_level(logging.WARNING):
        events = read_cms_muon(path, min_signal_hits=1)
    assert events.attrs["hepx_report"]["missing_optional_branches"] == ["n_gen_tau"]
    (message,) = _optional_warnings(caplog)
    assert "n_gen_tau" in message and "per-hit truth" in message
    assert events.label.tolist() == (events.n_signal_hits > 0).tolist()


# --------------------------------------------------------------------------- ACTS

ACTS_HITS_OPTIONAL = ["geometry_id", "tt", "te", "index"]
ACTS_PARTICLES_OPTIONAL = ["vx", "vy", "vz"]
ACTS_FIELDS_LOST = {"t", "e", "index", "volume_id", "layer_id", "sensitive_id", "geometry_id"}


def _without(path, tree, drop):
    """Rewrite ``tree`` of ``path`` without the branches ``drop`` (jagged branches keep their
    own counters, as ``acts_files.write_acts`` writes them)."""
    with uproot.open(path) as f:
        t = f[tree]
        keys = t.keys()
        counters = {k for k in keys if k.startswith("n") and k[1:] in keys}
        arrays = {k: t[k].array() for k in keys if k not in counters and k not in drop}
    arrays = {k: ak.to_numpy(v) if v.ndim == 1 else v for k, v in arrays.items()}
    with uproot.recreate(path) as f:
        f.mktree(
            tree, {k: v.dtype if isinstance(v, np.ndarray) else v.type for k, v in arrays.items()}
        )
        f[tree].extend(arrays)


@pytest.fixture(scope="module")
def acts_pair(tmp_path_factory):
    """The same events twice: full ACTS files and files without the optional branches."""
    full = tmp_path_factory.mktemp("acts_full")
    af.write_acts(full, af.build_events(12))
    reduced = tmp_path_factory.mktemp("acts_reduced")
    for name in ("hits.root", "particles.root"):
        shutil.copy(full / name, reduced / name)
    _without(reduced / "hits.root", "hits", ACTS_HITS_OPTIONAL)
    _without(reduced / "particles.root", "particles", ACTS_PARTICLES_OPTIONAL)
    return full, reduced


def test_acts_without_optional_branches_lacks_only_their_fields(acts_pair, caplog):
    full_dir, reduced_dir = acts_pair
    full = read_acts(full_dir / "hits.root", full_dir / "particles.root")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        events = read_acts(reduced_dir / "hits.root", reduced_dir / "particles.root")
    assert set(full.hits.fields) - set(events.hits.fields) == ACTS_FIELDS_LOST
    assert set(full.tracks.fields) - set(events.tracks.fields) == {"vx", "vy", "vz"}
    assert set(events.hits.fields) < set(full.hits.fields)
    assert set(events.tracks.fields) < set(full.tracks.fields)
    for name in ("event_id", "label", "n_particles"):
        assert events[name].tolist() == full[name].tolist()
    for name in events.hits.fields:
        assert events.hits[name].tolist() == full.hits[name].tolist(), name
    for name in events.tracks.fields:
        assert events.tracks[name].tolist() == full.tracks[name].tolist(), name
    report = events.attrs["hepx_report"]
    assert report["missing_optional_branches"] == ACTS_HITS_OPTIONAL + ACTS_PARTICLES_OPTIONAL
    assert full.attrs["hepx_report"]["missing_optional_branches"] == []
    hits_msg, particles_msg = _optional_warnings(caplog)  # one per tree, each once
    assert "hits.root:hits" in hits_msg and "geometry_id, tt, te, index" in hits_msg
    assert "hits.volume_id" in hits_msg and "hits.t," in hits_msg
    assert "particles.root:particles" in particles_msg and "vx, vy, vz" in particles_msg
    assert detect_kind(events) is get_kind("actstrack")
    get_kind("actstrack").check_input((reduced_dir / "hits.root", None), {})


def test_convert_actstrack_without_optional_branches_gives_the_same_point_clouds(
    acts_pair, tmp_path, caplog
):
    full_dir, reduced_dir = acts_pair
    assert main(["convert", "actstrack", str(full_dir), "--out", str(tmp_path / "a")]) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["convert", "actstrack", str(reduced_dir), "--out", str(tmp_path / "b")]) == 0
    assert len(_optional_warnings(caplog)) == 2  # the hits tree and the particles tree
    _assert_same_dataset(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize(
    ("tree", "branch"), [("hits", "tpx"), ("particles", "q"), ("particles", "particle_type")]
)
def test_acts_required_branch_missing_is_one_line_naming_only_it(
    acts_pair, tmp_path, capsys, tree, branch
):
    _, reduced_dir = acts_pair  # the optional branches are missing too: only `branch` is named
    for name in ("hits.root", "particles.root"):
        shutil.copy(reduced_dir / name, tmp_path / name)
    _without(tmp_path / f"{tree}.root", tree, [branch])
    with pytest.raises(InputError) as err:
        read_acts(tmp_path / "hits.root", tmp_path / "particles.root")
    message = str(err.value)
    assert "\n" not in message and f"{tree}.root:{tree}: missing branch(es) {branch} for" in message
    assert main(["convert", "actstrack", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err
    assert line.startswith("hepx: error: ") and line.count("\n") == 1
    assert f"{tree}.root" in line and f"missing branch(es) {branch} " in line
