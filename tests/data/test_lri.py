"""Importing the LRI authors' processed data sets: the reference's file layout written here
with PyG, read back without unpickling anything but PyG data and arrays."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset

from hepx.cli import main
from hepx.data import load_dataset
from hepx.data.dataset import read_manifest
from hepx.data.lri import import_lri
from hepx.errors import InputError


def _tau3mu_samples(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = 3 + i
        y = float(i % 2)
        label = (torch.arange(k) < 2).float() if y else torch.zeros(k)
        pos = torch.rand(k, 2, generator=g) * torch.tensor([2.0, 6.0]) - torch.tensor([1.0, 3.0])
        x = torch.rand(k, 1, generator=g)
        out.append(Data(x=x, pos=pos, y=torch.tensor(y).view(-1, 1), node_label=label))
    return out


def _save(samples, path, split=None):
    """As the reference's ``process()``: collate and save (data, slices, idx_split)."""
    data, slices = InMemoryDataset.collate(samples)
    if split is None:
        n = len(samples)
        split = {"train": np.arange(n - 2), "valid": np.array([n - 2]), "test": np.array([n - 1])}
    torch.save((data, slices, split), path)
    return path


def test_a_tau3mu_file_imports_sample_by_sample(tmp_path):
    samples = _tau3mu_samples()
    path = _save(samples, tmp_path / "data.pt")
    out = tmp_path / "ds"
    assert main(["convert", "lri", str(path), "--out", str(out)]) == 0
    ds = load_dataset(out)
    manifest = read_manifest(out)
    assert manifest["kind"] == "tau3mu" and manifest["period"] == [None, pytest.approx(2 * np.pi)]
    assert len(ds) == len(samples) and manifest["lri_fields_not_imported"] == []
    for got, want in zip(ds, samples, strict=True):
        assert torch.allclose(got.pos, want.pos) and torch.allclose(got.x, want.x)
        assert torch.equal(got.node_label.float(), want.node_label)
        assert float(got.y) == float(want.y)
        assert torch.equal(got.hit_index, torch.arange(len(want.pos)))
    assert ds._data.lri_split.view(-1).tolist() == [0, 0, 0, 0, 1, 2]


def test_an_actstrack_file_keeps_directions_and_tracks_and_drops_the_unused_features(tmp_path):
    g = torch.Generator().manual_seed(1)
    samples = []
    for i in range(4):
        k = 5 + i
        samples.append(
            Data(
                x=torch.rand(k, 8, generator=g),
                pos=torch.rand(k, 3, generator=g) * 1000,
                y=torch.tensor(float(i % 2)).view(-1, 1),
                node_label=torch.zeros(k),
                node_dir=torch.rand(k, 3, generator=g),
                track_ids=torch.arange(k) // 2,
                num_tracks=(k + 1) // 2,
                signal_im=91.0,
            )
        )
    path = _save(samples, tmp_path / "data_2T.pt", split={"train": [0, 1, 2], "test": [3]})
    manifest = import_lri(path, tmp_path / "ds")
    assert manifest["kind"] == "actstrack" and manifest["x_dim"] == 0
    assert manifest["lri_fields_not_imported"] == ["num_tracks", "signal_im", "x"]
    ds = load_dataset(tmp_path / "ds")
    for got, want in zip(ds, samples, strict=True):
        assert torch.allclose(got.node_dir, want.node_dir)
        assert torch.equal(got.track_ids, want.track_ids) and got.x.shape == (len(want.pos), 0)
    assert ds._data.lri_split.view(-1).tolist() == [0, 0, 0, 2]


def test_a_file_asking_for_other_objects_is_refused_and_nothing_is_written(tmp_path, capsys):
    path = _save(_tau3mu_samples(), tmp_path / "evil.pt", split={"train": os.system})
    out = tmp_path / "ds"
    assert main(["convert", "lri", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "refused" in err and "system" in err and err.count("\n") == 0
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["evil.pt"]


def test_a_refused_file_never_runs_its_payload(tmp_path):
    # a payload that would leave a file behind if it were ever unpickled
    marker = tmp_path / "ran"
    code = f"""
import torch, subprocess
class Payload:
    def __reduce__(self):
        return (subprocess.call, (["touch", {str(marker)!r}],))
torch.save((Payload(), {{}}), {str(tmp_path / "payload.pt")!r})
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(InputError, match="refused"):
        import_lri(tmp_path / "payload.pt", tmp_path / "ds")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"a": torch.zeros(2)}, "expected the reference's"),
        (b"not torch", "not a readable torch file"),
    ],
)
def test_files_that_are_not_lri_data_sets(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=message):
        import_lri(path, tmp_path / "ds")
    with pytest.raises(InputError, match="no such file"):
        import_lri(tmp_path / "missing.pt", tmp_path / "ds")
    with pytest.raises(InputError, match="not ActsTrack data"):
        import_lri(_save(_tau3mu_samples(), tmp_path / "t.pt"), tmp_path / "d2", kind="actstrack")
