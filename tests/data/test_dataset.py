"""Conversion to cached datasets, load-time splits, the generic loader and the CLI's bad input."""

import json
import shutil

import awkward as ak
import cms_files as cf
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from hepx.cli import main
from hepx.data import convert, load_dataset, split_indices
from hepx.errors import ConfigError, InputError
from hepx.io import read_acts, read_generic, write_generic


def test_actstrack_dataset_matches_reader(acts_raw, acts_dataset):
    ds = load_dataset(acts_dataset)
    ev = read_acts(acts_raw / "hits.root", acts_raw / "particles.root")
    assert len(ds) == len(ev) and ds.meta["kind"] == "actstrack" and ds.pos_dim == 3
    for i in (0, 7, len(ds) - 1):
        d, e = ds[i], ev[i]
        assert d.y.shape == (1, 1) and d.y.dtype == torch.float32
        assert int(d.y) == e.label and int(d.event_id) == e.event_id
        np.testing.assert_allclose(d.pos.numpy(), np.stack([e.hits.x, e.hits.y, e.hits.z], 1))
        np.testing.assert_array_equal(d.node_label.numpy(), e.hits.node_label.to_numpy())
        np.testing.assert_array_equal(d.hit_index.numpy(), e.hits.hit_index.to_numpy())
        np.testing.assert_array_equal(d.track_ids.numpy(), e.hits.track.to_numpy())
        assert d.x.shape == (d.num_nodes, 0)
        mom = np.stack([e.hits.px, e.hits.py, e.hits.pz], 1)
        np.testing.assert_allclose(
            d.node_dir.numpy(), mom / np.linalg.norm(mom, axis=1, keepdims=True), rtol=1e-5
        )
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch.y.shape == (5, 1) and batch.num_graphs == 5
    manifest = json.loads((acts_dataset / "manifest.json").read_text())
    assert manifest["format"] == "hepx-pointcloud" and manifest["version"] == 1
    assert manifest["reports"][0]["events_kept"] == len(ds)


def test_splits_are_chosen_at_load_time(acts_dataset):
    ds = load_dataset(acts_dataset)
    a = ds.split((0.5, 0.25, 0.25), seed=3)
    b = load_dataset(acts_dataset).split((0.5, 0.25, 0.25), seed=3)
    c = ds.split((0.5, 0.25, 0.25), seed=4)
    ids = {k: sorted(int(d.event_id) for d in v) for k, v in a.items()}
    assert ids == {k: sorted(int(d.event_id) for d in v) for k, v in b.items()}
    assert ids != {k: sorted(int(d.event_id) for d in v) for k, v in c.items()}
    all_ids = ids["train"] + ids["val"] + ids["test"]
    assert sorted(all_ids) == sorted(int(d.event_id) for d in ds)  # disjoint and complete
    # stratified: each part keeps the class ratio within one sample
    labels = np.array([0] * 70 + [1] * 30)
    parts = split_indices(labels, (0.7, 0.15, 0.15), seed=0)
    assert [len(p) for p in parts] == [70, 15, 15]
    assert [int(labels[p].sum()) for p in parts] == [21, 4, 5] or [
        int(labels[p].sum()) for p in parts
    ] == [21, 5, 4]
    with pytest.raises(InputError, match="fractions"):
        split_indices(labels, (0.5, -0.5))


def test_tau3mu_dataset(tmp_path):
    rng = np.random.default_rng(5)
    counts, fields, is_sig = cf.random_hits(rng, 40)
    cf.write_cms(tmp_path / "a.root", counts, fields, is_sig.astype(int))
    cf.write_cms(tmp_path / "b.root", counts, fields, is_sig.astype(int))
    manifest = convert("tau3mu", [tmp_path / "a.root", tmp_path / "b.root"], tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert ds.meta["period"] == [None, pytest.approx(2 * np.pi)] and ds.num_point_features == 1
    assert len(ds) == manifest["num_samples"] and len(ds) % 2 == 0
    half = len(ds) // 2
    assert ds[0].source_file.item() == 0 and ds[half].source_file.item() == 1
    assert torch.equal(ds[0].pos, ds[half].pos)


def test_generic_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    n = rng.integers(3, 9, 20)
    pos = ak.unflatten(rng.normal(size=(n.sum(), 3)).astype(np.float32), n)
    x = ak.unflatten(rng.normal(size=(n.sum(), 2)).astype(np.float32), n)
    lab = ak.unflatten(rng.integers(0, 2, n.sum()).astype(np.int8), n)
    y = rng.integers(0, 2, 20)
    write_generic(tmp_path / "g.parquet", pos=pos, y=y, x=x, node_label=lab)
    s = read_generic(tmp_path / "g.parquet")
    assert s.points.fields == ["pos_0", "pos_1", "pos_2", "x_0", "x_1", "node_label", "index"]
    convert("generic", [tmp_path / "g.parquet"], tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert ds.meta["pos_dim"] == 3 and ds.meta["x_dim"] == 2
    np.testing.assert_allclose(ds[4].pos.numpy(), ak.to_numpy(pos[4]))
    np.testing.assert_allclose(ds[4].x.numpy(), ak.to_numpy(x[4]))
    assert int(ds[4].y) == y[4]
    with pytest.raises(InputError, match="expected columns y, pos_0"):
        ak.to_parquet(ak.zip({"a": np.arange(3)}), tmp_path / "bad.parquet")
        read_generic(tmp_path / "bad.parquet")


def test_reader_options_are_checked(acts_raw, tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown key .trakcs_per_event.*allowed: .*tracks_per_event"
    ):
        convert("actstrack", [acts_raw], tmp_path / "ds", reader_options={"trakcs_per_event": 3})
    with pytest.raises(
        ConfigError,
        match=r"reader options for actstrack 'mass_window' must be a positive number, got 'big'",
    ):
        convert("actstrack", [acts_raw], tmp_path / "ds", reader_options={"mass_window": "big"})
    assert not (tmp_path / "ds").exists()


def test_cli_bad_input_exit_2_nothing_written(tmp_path, capsys, foreign_root):
    out = tmp_path / "out"
    assert main(["convert", "tau3mu", str(foreign_root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hepx: error:") and "MuonTrackTree" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out.tmp*"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reader:\n  filters:\n    - {branch: mu_hit_station, op: '=~', value: 1}\n")
    assert (
        main(["convert", "tau3mu", str(foreign_root), "--out", str(out), "--config", str(cfg)]) == 2
    )
    assert "unknown operator" in capsys.readouterr().err
    assert main(["convert", "actstrack", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_corrupted_dataset_is_refused(acts_dataset, tmp_path):
    shutil.copytree(acts_dataset, tmp_path / "ds")  # the session dataset stays intact
    (tmp_path / "ds" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"arrays\.npz: unreadable"):
        load_dataset(tmp_path / "ds")
    with pytest.raises(InputError, match="not a hepx dataset"):
        load_dataset(tmp_path)


def test_shipped_generic_example_as_a_dataset(generic_dataset, synmol_parquet):
    ds = load_dataset(generic_dataset)
    samples = read_generic(synmol_parquet)
    assert len(ds) == len(samples) == 400 and int(ds.labels.sum()) == 100
    assert (ds.meta["kind"], ds.meta["pos_dim"], ds.meta["x_dim"]) == ("generic", 3, 1)
    for i in (0, 123, 399):
        d, s = ds[i], samples[i]
        np.testing.assert_allclose(
            d.pos.numpy(), np.stack([s.points.pos_0, s.points.pos_1, s.points.pos_2], 1)
        )
        # ground truth: the 5 atoms of the nitro and hydroxyl groups of a positive sample
        assert int(d.node_label.sum()) == (5 if int(d.y) == 1 else 0)
