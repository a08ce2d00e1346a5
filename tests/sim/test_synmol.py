"""Tests of SynMol from real molecules (hepx.sim.synmol): the logic8 labels and ground truth,
the 3D points, the class ratio, reproducibility, the missing-package message and the generic
reader on the output. Needs RDKit and molsets (the `test` extra and `.ci/run` install them)."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
import sys

import awkward as ak
import numpy as np
import pytest

from hepx.cli import main
from hepx.sim.synmol import (
    FILE_NAME,
    INSTALL_HINT,
    MANIFEST_NAME,
    MissingPackageError,
    moses_smiles_path,
    simulate_synmol,
)

SAMPLES = 40
SEED = 3
#: logic8 as google-research/graph-attribution writes it (graph_attribution/tasks.py), typed
#: here again so that the labels are checked independently of the writer's constants.
ALKANE = "[R0;D2,D1][R0;D2][R0;D2,D1]"
CARBONYL = "[CX3]=O"


def _needs_packages() -> None:
    pytest.importorskip("rdkit")
    try:
        moses_smiles_path()
    except MissingPackageError:
        pytest.skip("molsets is not installed (pip install --no-deps molsets)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A SynMol of 40 molecules: (directory, returned statistics, rows as Python dicts)."""
    _needs_packages()
    out = tmp_path_factory.mktemp("synmol") / "sim"
    stats = simulate_synmol(out, samples=SAMPLES, seed=SEED, progress=False)
    return out, stats, ak.from_parquet(out / FILE_NAME).tolist()


def _truth(smiles: str) -> tuple[int, np.ndarray]:
    """Label and ground-truth atoms of logic8, recomputed with RDKit from the SMILES."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    found = [
        mol.GetSubstructMatches(Chem.MolFromSmarts(s), maxMatches=10**6) for s in (ALKANE, CARBONYL)
    ]
    truth = np.zeros(mol.GetNumAtoms(), dtype=np.int8)
    if not (found[0] and found[1]):
        return 0, truth
    for match in (m for matches in found for m in matches):
        truth[list(match)] = 1
    return 1, truth


def test_labels_and_ground_truth_recheck_from_the_stored_smiles(built):
    _, _, rows = built
    assert len(rows) == SAMPLES
    for row in rows:
        label, truth = _truth(row["smiles"])
        assert row["y"] == label, row["smiles"]
        assert row["node_label"] == truth.tolist(), row["smiles"]
        if label:  # a positive's important atoms include a C=O and a three-atom chain
            assert sum(row["node_label"]) >= 5
    assert len({row["sample_id"] for row in rows}) == SAMPLES


def test_points_are_the_heavy_atoms_with_their_atomic_number(built):
    from rdkit import Chem

    _, _, rows = built
    for row in rows:
        mol = Chem.MolFromSmiles(row["smiles"])
        z = [a.GetAtomicNum() for a in mol.GetAtoms()]
        assert row["x_0"] == [float(v) for v in z]
        assert 1 not in z and len(row["pos_0"]) == mol.GetNumAtoms()


def test_positions_are_finite_with_plausible_bond_lengths(built):
    from rdkit import Chem

    _, _, rows = built
    for row in rows:
        pos = np.stack([row["pos_0"], row["pos_1"], row["pos_2"]], axis=1)
        assert np.isfinite(pos).all()
        mol = Chem.MolFromSmiles(row["smiles"])
        bonded = Chem.GetAdjacencyMatrix(mol).astype(bool)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        assert ((dist[bonded] > 1.0) & (dist[bonded] < 2.0)).all(), row["smiles"]
        apart = ~bonded & ~np.eye(len(pos), dtype=bool)
        assert (dist[apart] > 1.8).all(), row["smiles"]  # no two atoms on top of each other


def test_the_selection_has_the_class_ratio_and_the_manifest_its_statistics(built):
    out, stats, rows = built
    y = np.array([row["y"] for row in rows])
    assert y.sum() == stats["positives"] == round(0.18 * SAMPLES) == 7
    assert stats["samples"] == SAMPLES and stats["class_ratio"] == "17.5:82.5"
    sizes = np.array([len(row["x_0"]) for row in rows])
    important = np.array([sum(row["node_label"]) for row in rows])
    assert stats["mean_points"] == pytest.approx(sizes.mean(), abs=1e-3)
    assert stats["mean_important_points_per_positive"] == pytest.approx(
        important[y == 1].mean(), abs=1e-3
    )
    assert (important[y == 0] == 0).all()
    assert stats["molecules_scanned"] >= SAMPLES
    assert stats["embedding_failures"] >= 0 and stats["mmff_failures"] >= 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["statistics"] == stats
    assert manifest["rule"]["smarts"] == {"unbranched alkane": ALKANE, "carbonyl": CARBONYL}
    assert manifest["parameters"] == {"samples": SAMPLES, "seed": SEED, "positive_fraction": 0.18}


def test_the_same_seed_gives_the_same_files_whatever_the_workers(built, tmp_path):
    out, _, _ = built
    again = tmp_path / "again"
    simulate_synmol(again, samples=SAMPLES, seed=SEED, workers=2, progress=False)
    for name in (FILE_NAME, MANIFEST_NAME):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    simulate_synmol(other, samples=12, seed=SEED + 1, progress=False)
    assert (other / FILE_NAME).read_bytes() != (out / FILE_NAME).read_bytes()


def test_failed_embeddings_are_skipped_and_counted(tmp_path, monkeypatch):
    _needs_packages()
    import hepx.sim.synmol as synmol

    real = synmol.embed_molecule
    failed: list[str] = []

    def flaky(smiles: str, random_seed: int):
        if random_seed % 3 == 0:
            failed.append(smiles)
            return None, "embedding_failed"
        return real(smiles, random_seed)

    monkeypatch.setattr(synmol, "embed_molecule", flaky)
    stats = simulate_synmol(tmp_path / "s", samples=12, seed=SEED, progress=False)
    assert failed and stats["embedding_failures"] == len(failed)
    rows = ak.from_parquet(tmp_path / "s" / FILE_NAME).tolist()
    assert len(rows) == 12 and sum(row["y"] for row in rows) == 2
    assert not {row["smiles"] for row in rows} & set(failed)


def test_hepx_convert_generic_reads_the_output_and_a_run_trains_on_it(built, tmp_path, capsys):
    out, stats, rows = built
    sim = tmp_path / "sim"
    shutil.copytree(out, sim)
    ds = tmp_path / "ds"
    assert main(["-q", "convert", "generic", str(sim / FILE_NAME), "--out", str(ds)]) == 0
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["num_samples"] == SAMPLES and manifest["num_positive"] == stats["positives"]
    assert manifest["pos_dim"] == 3 and manifest["x_dim"] == 1
    assert manifest["num_points"] == sum(len(row["x_0"]) for row in rows)
    with np.load(ds / "arrays.npz", allow_pickle=False) as arrays:
        assert arrays["node_label"].sum() == sum(sum(row["node_label"]) for row in rows)
    # the shipped SynMol config trains on it, and the run scores every atom
    run = tmp_path / "run"
    argv = ["-q", "train", "synmol/lri_bernoulli_egnn", "--out", str(run), "--no-progress"]
    argv += ["--set", f"dataset.path={ds}", "--set", "train.epochs=1"]
    argv += ["--set", "model.hidden_channels=8", "--set", "model.num_layers=2"]
    assert main(argv) == 0
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["n_test"] > 0 and "test_prec@5" in metrics


def test_the_command_writes_the_files_and_prints_the_statistics(tmp_path, caplog):
    _needs_packages()
    out = tmp_path / "cli"
    argv = ["simulate", "synmol", "--samples", "6", "--seed", "1", "--out", str(out)]
    with caplog.at_level(logging.INFO, logger="hepx"):
        assert main([*argv, "--no-progress"]) == 0
    text = caplog.text
    assert "samples 6 (1 positive : 5 negative = 16.7:83.3)" in text
    assert "mean important points per positive sample" in text
    assert "embedding failures" in text
    assert (out / FILE_NAME).is_file() and (out / MANIFEST_NAME).is_file()


def _fails_with_the_install_hint(tmp_path, capsys) -> None:
    out = tmp_path / "never"
    assert main(["simulate", "synmol", "--samples", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hepx: error: ")
    assert INSTALL_HINT in err
    assert not out.exists()


def test_without_rdkit_the_command_names_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)
    _fails_with_the_install_hint(tmp_path, capsys)


def test_without_molsets_the_command_names_the_install_command(tmp_path, capsys, monkeypatch):
    def no_distribution(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    monkeypatch.setitem(sys.modules, "moses", None)
    with pytest.raises(MissingPackageError, match="molsets"):
        moses_smiles_path()
    _fails_with_the_install_hint(tmp_path, capsys)


def test_logic8_on_hand_made_molecules():
    pytest.importorskip("rdkit")
    from rdkit import Chem

    from hepx.sim.synmol import logic8

    cases = {
        "CCCC(=O)N": (True, [1, 1, 1, 1, 1, 0]),  # butanamide: chain C-C-C and C=O
        "CC(=O)c1ccccc1": (False, [0] * 9),  # acetophenone: no acyclic three-atom chain
        "CCCCC": (False, [0] * 5),  # pentane: no carbonyl
    }
    for smiles, (label, atoms) in cases.items():
        got, mask = logic8(Chem.MolFromSmiles(smiles))
        assert (got, mask.astype(int).tolist()) == (label, atoms), smiles
        y, truth = _truth(smiles)
        assert (y, truth.tolist()) == (int(label), atoms), smiles


def test_bad_arguments_are_one_line_errors(tmp_path):
    from hepx.errors import ConfigError

    with pytest.raises(ConfigError, match="samples"):
        simulate_synmol(tmp_path / "a", samples=0)
    with pytest.raises(ConfigError, match="positive_fraction"):
        simulate_synmol(tmp_path / "a", samples=5, positive_fraction=1.5)
    assert not (tmp_path / "a").exists()
