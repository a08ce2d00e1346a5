"""What the readers refuse or drop, and say: non-finite values, wrong option types, empty
files; the chunked CMS reader gives what the whole-file reader gives."""

import acts_files as af
import awkward as ak
import cms_files as cf
import numpy as np
import pytest
import uproot

from hepx.errors import ConfigError, InputError
from hepx.io import read_acts, read_cms_muon, read_generic, write_generic
from hepx.io.cms_muon import MuonChunks


def _rewrite_hits(directory, change) -> None:
    """Rewrite ``directory/hits.root`` (flat v43 layout) with ``change(columns)`` applied."""
    path = directory / "hits.root"
    with uproot.open(path) as f:
        columns = f["hits"].arrays(library="np")
    change(columns)
    with uproot.recreate(path) as f:
        f.mktree("hits", {k: v.dtype for k, v in columns.items()})
        f["hits"].extend(columns)


@pytest.fixture
def acts_with_bad_hits(tmp_path):
    af.write_acts(tmp_path, af.build_events(12))

    def spoil(columns):
        columns["tx"][[3, 17]] = np.nan
        columns["tz"][40] = np.inf

    _rewrite_hits(tmp_path, spoil)
    return tmp_path


def test_acts_nonfinite_hits_are_an_error_naming_file_branch_and_count(acts_with_bad_hits):
    hits = acts_with_bad_hits / "hits.root"
    with pytest.raises(InputError, match=r"hits.root: branch tx has 2 non-finite values") as info:
        read_acts(hits, acts_with_bad_hits / "particles.root")
    assert "nonfinite: drop" in str(info.value)


def test_acts_nonfinite_hits_dropped_and_counted(acts_with_bad_hits):
    d = acts_with_bad_hits
    events = read_acts(
        d / "hits.root", d / "particles.root", nonfinite="drop", tracks_per_event=None
    )
    report = events.attrs["hepx_report"]
    assert report["dropped_nonfinite_hits"] == 3 and report["dropped_nonfinite_particles"] == 0
    flat = {c: ak.to_numpy(ak.flatten(events.hits[c])) for c in ("x", "y", "z")}
    assert all(np.isfinite(v).all() for v in flat.values())
    # hit_index still points at the hits tree's entries
    with uproot.open(d / "hits.root") as f:
        tx = f["hits"]["tx"].array(library="np")
    idx = ak.to_numpy(ak.flatten(events.hits.hit_index))
    assert not np.isin([3, 17, 40], idx).any()
    np.testing.assert_array_equal(tx[idx], flat["x"])


def test_cms_nonfinite_drop_keeps_what_is_finite(tmp_path):
    counts, fields, is_sig = cf.random_hits(np.random.default_rng(4), 40)
    fields["bend"] = fields["bend"].astype(np.float32)  # a float bend can hold a NaN
    selected = np.flatnonzero(
        (fields["station"] == 1) & (fields["neighbor"] == 0) & (fields["type"] != 0)
    )
    fields["bend"][selected[[1, 2]]] = np.nan
    unselected = np.flatnonzero(fields["station"] != 1)
    fields["sim_eta"][unselected[0]] = np.nan  # a hit the filters drop anyway: no error
    path = tmp_path / "cms.root"
    cf.write_cms(path, counts, fields, is_sig.astype(int))
    with pytest.raises(InputError, match="branch mu_hit_bend has 2 non-finite values"):
        read_cms_muon(path, min_signal_hits=1)
    events = read_cms_muon(path, min_signal_hits=1, nonfinite="drop")
    assert events.attrs["hepx_report"]["dropped_nonfinite_hits"] == 2
    assert np.isfinite(ak.to_numpy(ak.flatten(events.hits.bend))).all()


def test_reader_options_of_the_wrong_type_are_one_line_errors(cms_ntuple):
    with pytest.raises(ConfigError, match="min_hits"):
        read_cms_muon(cms_ntuple, min_hits="3")
    with pytest.raises(ConfigError, match="nonfinite"):
        read_cms_muon(cms_ntuple, nonfinite="ignore")


def test_chunked_cms_reading_equals_the_whole_file(cms_ntuple):
    whole = read_cms_muon(cms_ntuple, min_signal_hits=1)
    chunks = MuonChunks(cms_ntuple, min_signal_hits=1, step_size=7)
    parts = list(chunks)
    assert len(parts) > 3
    assert ak.to_list(ak.concatenate(parts)) == ak.to_list(whole)
    assert chunks.report == whole.attrs["hepx_report"]


def test_generic_nonfinite_and_empty_files(tmp_path):
    rng = np.random.default_rng(0)
    n = np.array([3, 4, 5])
    values = rng.normal(size=(n.sum(), 2)).astype(np.float32)
    values[4, 1] = np.nan
    pos = ak.unflatten(values, n)
    write_generic(tmp_path / "g.parquet", pos=pos, y=np.array([0, 1, 0]))
    with pytest.raises(InputError, match="column pos_1 has 1 non-finite values"):
        read_generic(tmp_path / "g.parquet")
    samples = read_generic(tmp_path / "g.parquet", nonfinite="drop")
    assert samples.attrs["hepx_report"]["dropped_nonfinite_points"] == 1
    assert ak.num(samples.points, axis=1).tolist() == [3, 3, 5]
    assert samples.points.index[1].tolist() == [0, 2, 3]  # positions in the file's row
    empty = {"y": np.zeros(0, int), "pos_0": pos[:0, :, 0], "pos_1": pos[:0, :, 1]}
    ak.to_parquet(ak.zip(empty, depth_limit=1), tmp_path / "e.parquet")
    with pytest.raises(InputError, match="holds no sample"):
        read_generic(tmp_path / "e.parquet")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("tracks_per_event", "3", "'tracks_per_event' must be null or a positive integer"),
        ("min_track_hits", "3", "'min_track_hits' must be a non-negative integer"),
        ("mass_window", "2", "'mass_window' must be a positive number"),
        ("nonfinite", "keep", "'nonfinite' must be one of error, drop"),
    ],
)
def test_read_acts_options_of_the_wrong_type_are_one_line(acts_raw, option, value, expected):
    from hepx.errors import ConfigError
    from hepx.io import read_acts

    with pytest.raises(ConfigError, match=expected) as err:
        read_acts(acts_raw / "hits.root", acts_raw / "particles.root", **{option: value})
    assert str(err.value).startswith("read_acts ") and "\n" not in str(err.value)
