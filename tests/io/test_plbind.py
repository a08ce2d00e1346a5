"""PLBind conversion against tiny complexes written here: PDB text in its fixed columns, a
ligand placed with RDKit, labels checked against distances computed in the test."""

import sys

import numpy as np
import pytest

pytest.importorskip("Bio.PDB")
Chem = pytest.importorskip("rdkit.Chem")
from rdkit.Chem import AllChem  # noqa: E402

from hepx.cli import main  # noqa: E402
from hepx.data import load_dataset  # noqa: E402
from hepx.data.dataset import read_manifest  # noqa: E402
from hepx.errors import InputError  # noqa: E402
from hepx.io.plbind import AMINO_ACIDS, convert_plbind, read_affinities, read_complex  # noqa: E402

LIGAND_CENTER = np.array([2.0, 7.0, 0.0])
#: Chain A: (name, CA x, CA B-factor); the ligand sits above residues 1-3.
CHAIN_A = [("GLY", 0.0, 21.0), ("ALA", 4.0, 22.0), ("SER", 8.0, 23.0), ("MSE", 20.0, 24.0)]
CHAIN_A += [("LYS", 30.0, 25.0)]
#: Residue type indices of CHAIN_A in the reference's list (MSE is not in it: "misc").
TYPES = [7, 0, 15, 37, 11]


def _atom(serial, name, resname, chain, resseq, xyz, b, element, record="ATOM"):
    """One PDB ATOM/HETATM record in the fixed columns (1-based: name 13-16, resName 18-20,
    chain 22, resSeq 23-26, x/y/z 31-54, occupancy 55-60, B 61-66, element 77-78)."""
    name4 = f" {name:<3}" if len(element) == 1 and len(name) < 4 else f"{name:<4}"
    x, y, z = xyz
    return (
        f"{record:<6}{serial:>5} {name4} {resname:>3} {chain}{resseq:>4}    "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{b:6.2f}          {element:>2}"
    )


def _residue(serial, resname, chain, resseq, ca, b, record="ATOM"):
    ca = np.asarray(ca, float)
    n, c, o = (ca + np.array(d) for d in ([-1.2, 0.8, 0.0], [1.2, 0.8, 0.0], [1.2, 2.0, 0.0]))
    atoms = [("N", n, b - 1, "N"), ("CA", ca, b, "C"), ("C", c, b + 1, "C"), ("O", o, b + 2, "O")]
    return [
        _atom(serial + i, n, resname, chain, resseq, xyz, bb, el, record)
        for i, (n, xyz, bb, el) in enumerate(atoms)
    ]


def protein_lines(far_chain_z=40.0):
    """Chain A near the ligand (with a water, a zinc and a residue without CA), chain B far."""
    lines = []
    for i, (name, x, b) in enumerate(CHAIN_A):
        record = "HETATM" if name == "MSE" else "ATOM"
        lines += _residue(1 + 4 * i, name, "A", 10 + i, (x, 0.0, 0.0), b, record)
    lines.append(_atom(30, "O", "HOH", "A", 101, (2.0, 5.0, 0.0), 30.0, "O", "HETATM"))
    lines.append(_atom(31, "ZN", "ZN", "A", 102, (3.0, 5.0, 1.0), 30.0, "ZN", "HETATM"))
    lines.append(_atom(32, "N", "GLU", "A", 103, (1.0, 4.0, 2.0), 30.0, "N"))  # no CA, C
    lines += _residue(40, "VAL", "B", 1, (0.0, 0.0, far_chain_z), 40.0)
    lines += _residue(44, "LEU", "B", 2, (4.0, 0.0, far_chain_z), 41.0)
    return lines


def ligand(center=LIGAND_CENTER, smiles="CCO"):
    """A small molecule with hydrogens and 3-D coordinates, centred at ``center``."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    conf = mol.GetConformer()
    pos = conf.GetPositions()
    for i, p in enumerate(pos - pos.mean(axis=0) + center):
        conf.SetAtomPosition(i, p.tolist())
    return mol


def write_complex(root, cid, *, lines=None, mol=None, protein="pdb", ligand_format="sdf"):
    d = root / cid
    d.mkdir(parents=True)
    lines = protein_lines() if lines is None else lines
    (d / f"{cid}_protein.pdb").write_text("\n".join([*lines, "END"]) + "\n")
    if protein == "cif":
        from Bio.PDB import MMCIFIO, PDBParser

        io = MMCIFIO()
        io.set_structure(PDBParser(QUIET=True).get_structure(cid, d / f"{cid}_protein.pdb"))
        io.save(str(d / f"{cid}_protein.cif"))
        (d / f"{cid}_protein.pdb").unlink()
    mol = ligand() if mol is None else mol
    if ligand_format == "sdf":
        (d / f"{cid}_ligand.sdf").write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    elif ligand_format == "mol2":
        (d / f"{cid}_ligand.mol2").write_text(_mol2(mol))
    return d


def _mol2(mol):
    """A Tripos MOL2 block of ``mol`` (sp3 atoms and hydrogens, single bonds only)."""
    pos = mol.GetConformer().GetPositions()
    types = {"C": "C.3", "O": "O.3", "N": "N.3", "H": "H"}
    atoms = [
        f"{i + 1:>7} {a.GetSymbol()}{i + 1:<4} {x:10.4f}{y:10.4f}{z:10.4f} "
        f"{types[a.GetSymbol()]:<5} 1  LIG1  0.0000"
        for i, (a, (x, y, z)) in enumerate(zip(mol.GetAtoms(), pos, strict=True))
    ]
    bonds = [
        f"{i + 1:>6}{b.GetBeginAtomIdx() + 1:>6}{b.GetEndAtomIdx() + 1:>6} 1"
        for i, b in enumerate(mol.GetBonds())
    ]
    head = ["@<TRIPOS>MOLECULE", "LIG", f"{len(atoms)} {len(bonds)} 1 0 0", "SMALL", "NO_CHARGES"]
    return "\n".join([*head, "", "@<TRIPOS>ATOM", *atoms, "@<TRIPOS>BOND", *bonds, ""])


def _ca_of_chain_a():
    return np.array([[x, 0.0, 0.0] for _, x, _ in CHAIN_A])


def _expected_pocket(lig_pos, cutoff=15.0):
    ca = _ca_of_chain_a()
    dist = np.linalg.norm(ca[:, None, :] - lig_pos[None, :, :], axis=2).min(axis=1)
    return (dist < cutoff).astype(np.int8)


@pytest.fixture(scope="module")
def complexes(tmp_path_factory):
    """Four complexes and a CSV of affinities: 5 nM (positive), 10 nM (not below the 10 nM
    threshold), an IC50 (skipped, as the reference does) and 2 uM."""
    root = tmp_path_factory.mktemp("plbind")
    for cid in ("1aaa", "1bbb", "1ccc", "1ddd"):
        write_complex(root / "set", cid)
    aff = root / "affinity.csv"
    aff.write_text("complex_id,affinity\n1aaa,Kd=5nM\n1bbb,Ki=10nM\n1ccc,IC50=1nM\n1ddd,Kd~2uM\n")
    return root, aff


def test_points_are_the_near_chains_residues_with_the_papers_features(complexes):
    root, _ = complexes
    c = read_complex(root / "set" / "1aaa")
    lig = Chem.MolFromMolFile(str(root / "set/1aaa/1aaa_ligand.sdf"), removeHs=False)
    lig_pos = lig.GetConformer().GetPositions()
    np.testing.assert_allclose(c.ligand_pos, lig_pos)
    assert len(lig_pos) == 9  # ethanol with its hydrogens: hydrogens count as ligand atoms
    # chain A's five amino acids (not the water, the zinc, nor the GLU without CA); chain B
    # lies 40 Å away, beyond the 10 Å chain cutoff
    np.testing.assert_allclose(c.ca_pos, _ca_of_chain_a(), atol=1e-3)
    assert c.res_seq.tolist() == [10, 11, 12, 13, 14] and c.chain_index.tolist() == [0] * 5
    assert c.hit_index.tolist() == [0, 1, 2, 3, 4]
    assert c.x[:, 0].tolist() == TYPES and AMINO_ACIDS[7] == "GLY"
    np.testing.assert_allclose(c.x[:, 2], [b for _, _, b in CHAIN_A])  # the C-alpha B-factor
    # pocket: C-alpha closer than 15 Å to any ligand atom; by hand residues 1-3 (x = 0, 4, 8)
    expected = _expected_pocket(lig_pos)
    assert expected.tolist() == [1, 1, 1, 0, 0]
    np.testing.assert_array_equal(c.node_label, expected)
    # a smaller cutoff, checked against the same explicit distances
    small = read_complex(root / "set" / "1aaa", pocket_cutoff=7.0)
    np.testing.assert_array_equal(small.node_label, _expected_pocket(lig_pos, 7.0))


def test_sasa_is_shrake_rupley_over_the_kept_residues_only(complexes, tmp_path):
    from Bio.PDB import PDBParser
    from Bio.PDB.SASA import ShrakeRupley

    root, _ = complexes
    c = read_complex(root / "set" / "1aaa")
    kept = [
        line
        for line in protein_lines()
        if line[21] == "A" and line[17:20] in {n for n, _, _ in CHAIN_A}
    ]
    (tmp_path / "kept.pdb").write_text("\n".join([*kept, "END"]) + "\n")
    model = PDBParser(QUIET=True).get_structure("k", tmp_path / "kept.pdb")[0]
    ShrakeRupley(probe_radius=1.4, n_points=100).compute(model, level="R")
    want = [r.sasa for r in model.get_residues()]
    assert len(want) == 5 and min(want) > 0
    np.testing.assert_allclose(c.x[:, 1], want, rtol=1e-6)


def test_the_closest_chain_is_kept_when_none_is_within_10_angstrom(tmp_path):
    mol = ligand(center=np.array([0.0, 0.0, 52.0]))  # 12 Å above chain B, 52 Å from chain A
    write_complex(tmp_path, "2aaa", mol=mol)
    c = read_complex(tmp_path / "2aaa")
    assert c.chain_index.tolist() == [1, 1] and c.res_seq.tolist() == [1, 2]


def test_the_dataset_holds_labels_from_the_affinity_threshold(complexes, tmp_path):
    root, aff = complexes
    out = tmp_path / "ds"
    manifest = convert_plbind([root / "set"], aff, out)
    ds = load_dataset(out)
    assert manifest["plbind"]["complex_ids"] == ["1aaa", "1bbb", "1ddd"]
    assert manifest["plbind"]["skipped"] == ["1ccc"]  # an IC50: not used
    assert manifest["x_names"] == ["residue_type", "sasa", "bfactor"]
    assert manifest["pos_unit"] == "angstrom" and manifest["kind"] == "generic"
    assert len(ds) == 3 and ds.pos_dim == 3 and ds.num_point_features == 3
    # Kd 5 nM < 10 nM: positive; Ki = 10 nM is not below the threshold; 2 uM: negative
    assert ds.labels.tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(
        ds._data.affinity_pk.view(-1), [-np.log10(5e-9), 8.0, -np.log10(2e-6)], rtol=1e-6
    )
    lig = Chem.MolFromMolFile(str(root / "set/1aaa/1aaa_ligand.sdf"), removeHs=False)
    lig_pos = lig.GetConformer().GetPositions()
    for sample in ds:
        assert sample.node_label.tolist() == _expected_pocket(lig_pos).tolist()
        center = sample.center.view(-1).numpy()
        np.testing.assert_allclose(center, _ca_of_chain_a().mean(axis=0), atol=1e-4)
        np.testing.assert_allclose(sample.pos.numpy() + center, _ca_of_chain_a(), atol=1e-3)
        np.testing.assert_allclose(sample.pos.mean(dim=0).numpy(), 0.0, atol=1e-4)
        np.testing.assert_allclose(
            sample.ligand_center.view(-1).numpy() + center, lig_pos.mean(axis=0), atol=1e-3
        )
        assert int(sample.num_ligand_atoms) == 9
    # a higher threshold makes 1bbb (10 nM) positive too
    more = convert_plbind(
        [root / "set" / "1aaa", root / "set" / "1bbb"], aff, tmp_path / "t", threshold_nm=10.5
    )
    assert load_dataset(tmp_path / "t").labels.tolist() == [1.0, 1.0] and more["num_positive"] == 2


def test_mmcif_and_mol2_give_the_same_points(complexes, tmp_path):
    root, _ = complexes
    want = read_complex(root / "set" / "1aaa")
    write_complex(tmp_path, "3cif", protein="cif")
    write_complex(tmp_path, "3mol", ligand_format="mol2")
    for cid in ("3cif", "3mol"):
        got = read_complex(tmp_path / cid)
        np.testing.assert_allclose(got.ca_pos, want.ca_pos, atol=1e-3)
        np.testing.assert_allclose(got.x, want.x, rtol=1e-5)
        np.testing.assert_allclose(got.ligand_pos, want.ligand_pos, atol=1e-3)
        assert got.node_label.tolist() == want.node_label.tolist()
        assert got.res_seq.tolist() == want.res_seq.tolist()


def test_an_sdf_rdkit_cannot_sanitise_falls_back_to_the_mol2(tmp_path):
    d = write_complex(tmp_path, "4aaa", ligand_format="mol2")
    bad = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)  # pentavalent carbon
    AllChem.Compute2DCoords(bad)
    (d / "4aaa_ligand.sdf").write_text(Chem.MolToMolBlock(bad, kekulize=False) + "$$$$\n")
    c = read_complex(d)
    assert len(c.ligand_pos) == 9  # the MOL2's ethanol, not the SDF's six carbons


def test_pdbbind_index_file(tmp_path):
    path = tmp_path / "INDEX_general_PL_data.2020"
    path.write_text(
        "# ==============================\n"
        "# PDB code, resolution, release year, -logKd/Ki, Kd/Ki, reference, ligand name\n"
        "1AAA  2.00  2020   8.30  Kd=5nM        // 1aaa.pdf (LIG)\n"
        "1bbb  1.80  2019   5.70  Ki=2uM        // 1bbb.pdf (A, B)\n"
        "1ccc  2.50  2018   7.00  IC50=100nM    // 1ccc.pdf (XYZ)\n"
        "1ddd  2.50  2018   7.00  Kd<10nM       // 1ddd.pdf (XYZ)\n"
        "1eee  2.50  2018   3.00  Kd=1mM        // 1eee.pdf (XYZ)\n"
    )
    got = read_affinities(path)
    assert got == {
        "1aaa": pytest.approx(5e-9),
        "1bbb": pytest.approx(2e-6),
        "1ccc": None,
        "1ddd": None,
        "1eee": pytest.approx(1e-3),
    }


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("complex_id,affinity\n1aaa,12\n", "not a measurement"),
        ("complex_id,affinity\n1aaa,Kd=0nM\n", "not a positive finite"),
        ("complex_id,affinity\n1aaa,Kd=1nM\n1AAA,Kd=2nM\n", "listed twice"),
        ("id,value\n1aaa,Kd=1nM\n", "complex_id,affinity"),
        ("1aaa 2.0 2020 8.0\n", "PDBbind index"),
    ],
)
def test_bad_affinity_files_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "aff.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        read_affinities(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_complexes_are_one_line_errors_naming_the_file(tmp_path):
    d = write_complex(tmp_path, "5aaa")
    (d / "5aaa_ligand.sdf").unlink()
    with pytest.raises(InputError, match=r"no ligand file; expected 5aaa_ligand\.sdf") as err:
        read_complex(d)
    assert str(d) in str(err.value)

    lines = protein_lines()
    lines[2] = lines[2][:30] + "  abc.de" + lines[2][38:]  # x of the first C is not a number
    d = write_complex(tmp_path, "5bbb", lines=lines)
    with pytest.raises(InputError, match=r"5bbb_protein.pdb: not a readable PDB file.*line 3"):
        read_complex(d)

    d = write_complex(tmp_path, "5ccc", mol=ligand(center=np.array([0.0, 300.0, 0.0])))
    (d / "5ccc_protein.pdb").write_text(_atom(1, "O", "HOH", "A", 1, (0, 0, 0), 1.0, "O") + "\n")
    with pytest.raises(InputError, match="0 amino-acid residue"):
        read_complex(d)


def test_a_complex_without_affinity_is_an_error_and_nothing_is_written(complexes, tmp_path):
    root, _ = complexes
    aff = tmp_path / "aff.csv"
    aff.write_text("complex_id,affinity\n1aaa,Kd=5nM\n1bbb,Kd=5nM\n1ccc,Kd=5nM\n")
    out = tmp_path / "ds"
    with pytest.raises(InputError, match=r"aff.csv: no affinity for complex 1ddd"):
        convert_plbind([root / "set"], aff, out)
    assert not out.exists()


def test_the_command_converts_and_fails_with_one_line_and_exit_2(complexes, tmp_path, capsys):
    root, aff = complexes
    out = tmp_path / "ds"
    argv = ["convert", "plbind", str(root / "set" / "1aaa"), str(root / "set" / "1ddd")]
    assert main([*argv, "--affinity", str(aff), "--out", str(out), "--pocket-cutoff", "7"]) == 0
    manifest = read_manifest(out)
    assert manifest["num_samples"] == 2 and manifest["plbind"]["pocket_cutoff"] == 7.0
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--affinity" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("complex_id,affinity\n1aaa,Kd=5nM\n")
    assert main([*argv, "--affinity", str(bad), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no affinity for complex 1ddd" in err


def test_a_missing_package_names_the_install_command(complexes, tmp_path, monkeypatch):
    from hepx.errors import HepxError

    root, aff = complexes
    monkeypatch.setitem(sys.modules, "Bio.PDB", None)  # as if Biopython were not installed
    with pytest.raises(HepxError, match=r"needs Biopython: pip install 'hepx\[plbind\]'"):
        convert_plbind([root / "set"], aff, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
