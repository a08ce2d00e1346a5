"""Protein-ligand complexes (PDBbind layout) -> PLBind point clouds, as the LRI paper defines them.

The rules follow the LRI reference code (``Graph-COM/LRI``, ``src/datasets/plbind.py`` and
``src/configs/plbind.yml``; itself adapted from EquiBind's ``datasets/pdbbind.py``):

* **Points: residues, not atoms.** One point per amino-acid residue, at its C-alpha atom. A
  residue counts when it has atoms named ``N``, ``CA`` and ``C`` (ATOM or HETATM); waters,
  ions and other hetero groups are dropped. Only the first model is read.
* **Chains.** The residues of every chain with an atom closer than ``chain_cutoff`` (10 Å)
  to a ligand atom are kept -- whole chains, not only the pocket; when no chain is that close,
  the closest chain. Chains without amino acids (waters) never count. (The reference read
  EquiBind's ``*_protein_processed.pdb``, from which waters had been removed; here waters are
  dropped when the protein is read, so PDBbind's ``*_protein.pdb`` gives the same chains.)
* **Features** ``x`` [n, 3], as the reference's receptor featuriser: ``residue_type``, the
  residue name's index in the reference's list of 37 names (:data:`AMINO_ACIDS`; any other
  name gets 37, "misc"), a categorical value stored as a float; ``sasa``, the residue's
  solvent-accessible surface in Å² (Shrake-Rupley of Biopython, probe 1.4 Å, 100 points per
  atom, computed over the kept residues only); ``bfactor``, the C-alpha's B-factor.
* **Positions** ``pos`` [n, 3] in Å, centred on the mean of the kept C-alphas as in the
  reference; the sample field ``center`` holds that mean, so ``pos + center`` gives the
  file's coordinates.
* **Ground truth** ``node_label``: the reference's *pocket* label, 1 for a residue whose
  C-alpha lies closer than ``pocket_cutoff`` (15 Å, ``pocket_cutoff: 15`` of the published
  config) to any ligand atom, hydrogens included, for every sample, as in the reference. The
  reference can also mark residues in contact according to PLIP interaction files
  (``contacts/*.pkl``, hydrogen bonds and non-bonded contacts); its config turns that off
  (``use_contact_label: false``) and hepx does not compute PLIP contacts.
* **Label** ``y``: 1 when the complex's dissociation or inhibition constant (Kd or Ki, in
  molar) is below ``threshold_nm`` (10 nM, ``bin_thres: 10``), i.e. pK > 8; else 0.
  Affinities given as IC50 or as a bound (``<``, ``>``) are not used, as in the reference:
  such complexes are skipped, and the manifest lists them.
* **The ligand** is not a point of the cloud (the reference keeps it as separate ``x_lig`` /
  ``pos_lig`` tensors, which hepx's one-cloud-per-sample layout cannot hold): its atoms decide
  the chains and the labels, and each sample keeps ``ligand_center`` (the mean of its atoms'
  positions, in the frame of ``pos``) and ``num_ligand_atoms``.

Input, as PDBbind ships it: one directory per complex, ``<id>/<id>_protein.pdb`` (or
``<id>_protein.cif``, mmCIF) and ``<id>/<id>_ligand.sdf`` (or ``<id>_ligand.mol2``; as in the
reference the SDF is used when RDKit can read and sanitise it, else the MOL2), plus one
affinity file: PDBbind's index (``INDEX_general_PL_data.2020``: code, resolution, year, pK,
then the measurement such as ``Kd=49uM``) or a CSV with the header ``complex_id,affinity`` and
measurements such as ``Kd=12nM``, ``Ki~3.5uM`` or ``12nM``.

Besides ``pos``, ``x`` and ``node_label``, each point has ``hit_index`` (the residue's index
among all residues of the first model, in Biopython's order), ``res_seq`` (its residue number)
and ``chain_index`` (its chain's index in the model); each sample has ``y``, ``event_id``,
``source_file`` (both index the manifest's ``complex_ids`` and ``source_files``),
``affinity_pk`` (-log10 of the constant in M), ``center``, ``ligand_center`` and
``num_ligand_atoms``.

Needs Biopython and RDKit: ``pip install 'hepx[plbind]'``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hepx.errors import ConfigError, InputError

log = logging.getLogger("hepx")

__all__ = ["AMINO_ACIDS", "PLBindComplex", "convert_plbind", "read_affinities", "read_complex"]

#: Residue names of the reference's ``possible_amino_acids``; ``residue_type`` is the index,
#: and any other name gets ``len(AMINO_ACIDS)`` ("misc").
AMINO_ACIDS = (
    *("ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS"),
    *("MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "HIP", "HIE", "TPO", "HID"),
    *("LEV", "MEU", "PTR", "GLV", "CYT", "SEP", "HIZ", "CYM", "GLM", "ASQ", "TYS", "CYX"),
    "GLZ",
)
X_NAMES = ("residue_type", "sasa", "bfactor")
#: The published config's ``pocket_cutoff`` (Å), the reference's chain cutoff (Å) and its
#: ``bin_thres`` (nM).
POCKET_CUTOFF = 15.0
CHAIN_CUTOFF = 10.0
THRESHOLD_NM = 10.0

_WATERS = frozenset({"HOH", "WAT", "H2O", "DOD", "D2O"})
_MOLAR = {"fM": 1e-15, "pM": 1e-12, "nM": 1e-9, "uM": 1e-6, "µM": 1e-6, "mM": 1e-3, "M": 1.0}
_MEASUREMENT = re.compile(
    r"^(?:(?P<kind>[A-Za-z][A-Za-z0-9]*)\s*(?P<op><=|>=|[=~<>]))?\s*"
    r"(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[fpnuµm]?M)$"
)
_INSTALL = "pip install 'hepx[plbind]'"


@dataclass(frozen=True)
class PLBindComplex:
    """One complex as points: the kept residues (C-alpha positions in the file's frame, Å)."""

    complex_id: str
    ca_pos: np.ndarray  # [n, 3] float64
    x: np.ndarray  # [n, 3] float32: residue_type, sasa, bfactor
    node_label: np.ndarray  # [n] int8, pocket label
    hit_index: np.ndarray  # [n] int64
    res_seq: np.ndarray  # [n] int32
    chain_index: np.ndarray  # [n] int32
    ligand_pos: np.ndarray  # [m, 3] float64, hydrogens included


def _require(module: str, package: str) -> Any:
    """Import ``module`` or stop with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"PLBind conversion needs {package}: {_INSTALL}") from None


# -- affinities ---------------------------------------------------------------------------


def _molar(text: str, where: str) -> float | None:
    """A measurement (``Kd=12nM``, ``Ki~3uM``, ``12nM``) in M; ``None`` where the reference
    does not use it (IC50 or another kind, or a bound)."""
    m = _MEASUREMENT.match(text.strip())
    if m is None:
        raise InputError(
            f"{where}: affinity {text.strip()!r} is not a measurement; expected e.g. Kd=12nM, "
            "Ki~3.5uM or 12nM (units fM, pM, nM, uM, mM, M)"
        )
    kind, op = m["kind"], m["op"]
    if (kind is not None and kind.lower() not in ("kd", "ki")) or op in ("<", ">", "<=", ">="):
        return None
    molar = float(m["value"]) * _MOLAR[m["unit"]]
    if not 0 < molar < math.inf:
        raise InputError(f"{where}: affinity {text.strip()!r} is not a positive finite constant")
    return molar


def read_affinities(path: str | os.PathLike) -> dict[str, float | None]:
    """Affinities of complexes: ``complex_id -> Kd or Ki in M`` (``None``: not usable).

    Reads PDBbind's index file (whitespace-separated, ``#`` comments, the measurement in the
    fifth column) or a CSV with the header ``complex_id,affinity``. IC50 values and bounds
    map to ``None`` (the LRI reference skips those complexes). Ids are lower-cased.

    Raises:
        InputError: missing file, a malformed line or measurement, or an id listed twice.

    Example
    -------
    >>> read_affinities("index/INDEX_general_PL_data.2020")["1a1e"]  # doctest: +SKIP
    2.6e-07
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise InputError(f"{path}: cannot read the affinity file ({err.strerror})") from None
    rows = [(i, s.strip()) for i, s in enumerate(lines, 1) if s.strip() and s[:1] != "#"]
    csv = bool(rows) and rows[0][1].replace(" ", "").lower().startswith("complex_id,")
    if csv:
        header = [c.strip().lower() for c in rows[0][1].split(",")]
        if header[:2] != ["complex_id", "affinity"]:
            raise InputError(
                f"{path}: the CSV header is {rows[0][1][:80]!r}; expected 'complex_id,affinity'"
            )
        rows = rows[1:]
    out: dict[str, float | None] = {}
    for number, line in rows:
        cells = [c.strip() for c in line.split(",")] if csv else line.split()
        if len(cells) < (2 if csv else 5):
            expected = (
                "complex_id,affinity"
                if csv
                else "PDBbind index columns (code, resolution, year, pK, Kd/Ki ...) or a CSV "
                "with the header 'complex_id,affinity'"
            )
            raise InputError(f"{path}:{number}: expected {expected}, got {line[:80]!r}")
        cid = cells[0].lower()
        if cid in out:
            raise InputError(f"{path}:{number}: complex {cid!r} is listed twice")
        out[cid] = _molar(cells[1] if csv else cells[4], f"{path}:{number}")
    if not out:
        raise InputError(f"{path}: no affinity in the file; expected one line per complex")
    return out


# -- one complex --------------------------------------------------------------------------


def _protein_file(directory: Path, cid: str) -> Path:
    for suffix in (".pdb", ".cif", ".mmcif"):
        path = directory / f"{cid}_protein{suffix}"
        if path.is_file():
            return path
    raise InputError(
        f"{directory}: no protein file; expected {cid}_protein.pdb or {cid}_protein.cif"
    )


def _read_model(path: Path) -> Any:
    """The first model of a PDB or mmCIF file (Biopython)."""
    pdb = _require("Bio.PDB", "Biopython")
    cif = path.suffix in (".cif", ".mmcif")
    parser = pdb.MMCIFParser(QUIET=True) if cif else pdb.PDBParser(QUIET=True)
    what = "mmCIF" if cif else "PDB"
    try:
        structure = parser.get_structure(path.stem, str(path))
    except Exception as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise InputError(
            f"{path}: not a readable {what} file ({text}); expected ATOM/HETATM records"
            + ("" if cif else " in PDB's fixed columns")
        ) from None
    models = list(structure)
    if not models or not any(True for _ in models[0].get_atoms()):
        raise InputError(f"{path}: no atom in the file; expected a protein's {what} records")
    return models[0]


def _read_ligand(directory: Path, cid: str) -> np.ndarray:
    """Ligand atom positions [m, 3]: the SDF when RDKit reads and sanitises it, else the MOL2."""
    chem = _require("rdkit.Chem", "RDKit")
    from rdkit import rdBase

    paths = [directory / f"{cid}_ligand{s}" for s in (".sdf", ".mol2")]
    if not any(p.is_file() for p in paths):
        raise InputError(
            f"{directory}: no ligand file; expected {paths[0].name} or {paths[1].name}"
        )
    for path in (p for p in paths if p.is_file()):
        _block = rdBase.BlockLogs()  # RDKit's own messages: the error below says it all
        try:
            if path.suffix == ".sdf":
                mol = next(iter(chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)))
            else:
                mol = chem.MolFromMol2File(str(path), sanitize=False, removeHs=False)
            chem.SanitizeMol(mol)
        except Exception:
            continue
        finally:
            del _block
        if mol.GetNumAtoms() and mol.GetNumConformers():
            return np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    names = " or ".join(p.name for p in paths if p.is_file())
    raise InputError(
        f"{directory}: RDKit cannot read or sanitise {names}; expected a ligand with 3-D "
        "coordinates (SDF or MOL2)"
    )


def _atom_table(model: Any) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Per-atom arrays of the model (residue index, name, coordinates, B-factor), per-residue
    arrays (chain index, name, number), and the residues (Biopython objects) in that order."""
    residues = list(model.get_residues())
    chains = {id(c): i for i, c in enumerate(model)}
    sizes = np.fromiter((len(r) for r in residues), np.int64, len(residues))
    atoms = [a for r in residues for a in r]
    table = {
        "atom_res": np.repeat(np.arange(len(residues)), sizes),
        "atom_name": np.array([a.get_id() for a in atoms], dtype=str),
        "atom_pos": np.array([a.coord for a in atoms], dtype=np.float64).reshape(-1, 3),
        "atom_b": np.array([a.bfactor for a in atoms], dtype=np.float64),
        "res_chain": np.array([chains[id(r.get_parent())] for r in residues], dtype=np.int64),
        "res_name": np.array([r.get_resname() for r in residues], dtype=str),
        "res_seq": np.array([r.get_id()[1] for r in residues], dtype=np.int64),
    }
    return table, residues


def _kept_residues(t: dict[str, np.ndarray], lig: np.ndarray, cutoff: float) -> np.ndarray:
    """Indices of the amino-acid residues of the chains near the ligand (reference rules)."""
    from scipy.spatial import cKDTree

    n_res = len(t["res_name"])
    amino = ~np.isin(t["res_name"], list(_WATERS))
    for name in ("N", "CA", "C"):
        amino &= np.bincount(t["atom_res"][t["atom_name"] == name], minlength=n_res) > 0
    atom_ok = amino[t["atom_res"]]
    dist = cKDTree(lig).query(t["atom_pos"][atom_ok])[0]
    chain_min = np.full(int(t["res_chain"].max()) + 1, np.inf)
    np.minimum.at(chain_min, t["res_chain"][t["atom_res"][atom_ok]], dist)
    chains = np.flatnonzero(chain_min < cutoff)
    if len(chains) == 0 and np.isfinite(chain_min).any():
        chains = np.array([int(np.argmin(chain_min))])
    return np.flatnonzero(amino & np.isin(t["res_chain"], chains))


def _residue_sasa(model: Any, residues: list[Any], kept: np.ndarray, path: Path) -> np.ndarray:
    """Shrake-Rupley SASA (Å²) per kept residue, over the kept residues only."""
    from Bio.PDB.SASA import ShrakeRupley

    keep = set(kept.tolist())
    for i, residue in enumerate(residues):
        if i not in keep:
            residue.get_parent().detach_child(residue.get_id())
    for chain in [c for c in model if len(c) == 0]:
        model.detach_child(chain.get_id())
    try:
        ShrakeRupley(probe_radius=1.4, n_points=100).compute(model, level="R")
    except Exception as err:
        raise InputError(
            f"{path}: cannot compute the residues' solvent-accessible surface "
            f"({type(err).__name__}: {err}); expected atoms of known elements"
        ) from None
    return np.array([residues[i].sasa for i in kept], dtype=np.float64)


def read_complex(
    directory: str | os.PathLike,
    *,
    complex_id: str | None = None,
    pocket_cutoff: float = POCKET_CUTOFF,
    chain_cutoff: float = CHAIN_CUTOFF,
) -> PLBindComplex:
    """Read one complex directory into PLBind points (the module docstring has the rules).

    Args:
        directory: holds ``<id>_protein.pdb`` (or ``.cif``) and ``<id>_ligand.sdf`` (or
            ``.mol2``).
        complex_id: the ``<id>`` of the file names (default: the directory's name).
        pocket_cutoff: C-alpha to ligand-atom distance (Å) below which a residue is labelled.
        chain_cutoff: atom distance (Å) below which a chain's residues are kept.

    Raises:
        InputError: a missing or unreadable file, or fewer than two residues kept.

    Example
    -------
    >>> c = read_complex("refined-set/1a1e")  # doctest: +SKIP
    >>> c.ca_pos.shape, int(c.node_label.sum())  # doctest: +SKIP
    ((243, 3), 61)
    """
    from scipy.spatial import cKDTree

    directory = Path(directory)
    cid = complex_id or directory.name
    protein = _protein_file(directory, cid)
    lig = _read_ligand(directory, cid)
    model = _read_model(protein)
    t, residues = _atom_table(model)
    kept = _kept_residues(t, lig, chain_cutoff)
    if len(kept) < 2:
        raise InputError(
            f"{protein}: {len(kept)} amino-acid residue(s) near the ligand; expected at least 2 "
            "(residues with N, CA and C atoms)"
        )
    is_ca = t["atom_name"] == "CA"
    res_of_ca, first = np.unique(t["atom_res"][is_ca], return_index=True)
    ca_atom = np.flatnonzero(is_ca)[first][np.searchsorted(res_of_ca, kept)]
    ca_pos = t["atom_pos"][ca_atom]
    vocab = {name: i for i, name in enumerate(AMINO_ACIDS)}
    rtype = np.array([vocab.get(n, len(AMINO_ACIDS)) for n in t["res_name"][kept]])
    sasa = _residue_sasa(model, residues, kept, protein)
    near = cKDTree(lig).query(ca_pos)[0] < pocket_cutoff
    return PLBindComplex(
        complex_id=cid,
        ca_pos=ca_pos,
        x=np.stack([rtype, sasa, t["atom_b"][ca_atom]], axis=1).astype(np.float32),
        node_label=near.astype(np.int8),
        hit_index=kept.astype(np.int64),
        res_seq=t["res_seq"][kept].astype(np.int32),
        chain_index=t["res_chain"][kept].astype(np.int32),
        ligand_pos=lig,
    )


# -- a data set ---------------------------------------------------------------------------


def _find_complexes(inputs: Sequence[str | os.PathLike]) -> list[tuple[str, Path]]:
    """``(id, directory)`` of each complex: an input is a complex directory or a directory of
    them (PDBbind's ``refined-set``; subdirectories without a protein file are passed over)."""

    def has_protein(d: Path) -> bool:
        return any((d / f"{d.name}_protein{s}").is_file() for s in (".pdb", ".cif", ".mmcif"))

    found: dict[str, Path] = {}
    for given in map(Path, inputs):
        if not given.is_dir():
            raise InputError(
                f"{given}: no such directory; expected a complex directory (<id>/<id>_protein.pdb"
                ", <id>_ligand.sdf) or a directory of them"
            )
        dirs = [given] if has_protein(given) else sorted(d for d in given.iterdir() if d.is_dir())
        dirs = [d for d in dirs if has_protein(d)]
        if not dirs:
            raise InputError(
                f"{given}: no complex found; expected <id>/<id>_protein.pdb (or .cif) with "
                "<id>_ligand.sdf (or .mol2)"
            )
        for d in dirs:
            cid = d.name.lower()
            if cid in found:
                raise InputError(f"{d}: complex {cid!r} is given twice (also {found[cid]})")
            found[cid] = d
    return sorted(found.items())


def _complex_arrays(c: PLBindComplex, index: int, molar: float, threshold_nm: float):
    """The :class:`~hepx.data.dataset.PointCloudArrays` of one complex (one sample)."""
    from hepx.data.store import PointCloudArrays

    center = c.ca_pos.mean(axis=0)
    n = len(c.ca_pos)
    return PointCloudArrays(
        ptr=np.array([0, n], dtype=np.int64),
        point={
            "pos": (c.ca_pos - center).astype(np.float32),
            "x": c.x,
            "node_label": c.node_label,
            "hit_index": c.hit_index,
            "res_seq": c.res_seq,
            "chain_index": c.chain_index,
        },
        sample={
            "y": np.array([molar < threshold_nm * 1e-9], dtype=np.int8),
            "event_id": np.array([index], dtype=np.int64),
            "source_file": np.array([index], dtype=np.int32),
            "affinity_pk": np.array([-math.log10(molar)], dtype=np.float32),
            "center": center[None].astype(np.float32),
            "ligand_center": (c.ligand_pos.mean(axis=0) - center)[None].astype(np.float32),
            "num_ligand_atoms": np.array([len(c.ligand_pos)], dtype=np.int32),
        },
        meta={
            "kind": "generic",
            "pos_dim": 3,
            "x_dim": 3,
            "coords": ["x", "y", "z"],
            "pos_unit": "angstrom",
            "period": [None, None, None],
            "x_names": list(X_NAMES),
        },
    )


def _usable(
    complexes: list[tuple[str, Path]], affinities: dict[str, float | None], source: Path
) -> tuple[list[tuple[str, Path, float]], list[str]]:
    """The complexes with a usable affinity, and the ids of those skipped (IC50, bounds)."""
    missing = [cid for cid, _ in complexes if cid not in affinities]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(
            f"{source}: no affinity for complex {', '.join(missing[:3])}{more}; expected a "
            "line for every complex"
        )
    usable = [(cid, d, k) for cid, d in complexes if (k := affinities[cid]) is not None]
    skipped = [cid for cid, _ in complexes if affinities[cid] is None]
    if not usable:
        raise InputError(
            f"{source}: none of the {len(complexes)} complexes has a usable Kd or Ki (IC50 "
            "values and bounds are not used)"
        )
    return usable, skipped


def convert_plbind(
    inputs: Sequence[str | os.PathLike],
    affinity_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    pocket_cutoff: float = POCKET_CUTOFF,
    threshold_nm: float = THRESHOLD_NM,
    chain_cutoff: float = CHAIN_CUTOFF,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert protein-ligand complexes (PDBbind layout) into a hepx PLBind dataset.

    Args:
        inputs: complex directories, or directories of them.
        affinity_file: PDBbind index file or ``complex_id,affinity`` CSV.
        out_dir: the dataset directory to write (atomically: nothing half-written).
        pocket_cutoff: Å; a residue whose C-alpha is closer to a ligand atom is labelled 1.
        threshold_nm: a complex with Kd/Ki below it (nM) has ``y`` 1.
        chain_cutoff: Å; the chains with an atom this close to the ligand are kept.
        overwrite: replace what is at ``out_dir`` (only a hepx dataset is replaced without).

    Returns:
        The manifest (``plbind``: the rules' values, the complex ids, the skipped ids).

    Example
    -------
    >>> m = convert_plbind(["refined-set"], "index/INDEX_refined_data.2020", "data/plbind")  # doctest: +SKIP
    >>> m["num_samples"], m["x_names"]  # doctest: +SKIP
    (4852, ['residue_type', 'sasa', 'bfactor'])
    """
    from hepx.atomic import atomic_dir, check_output
    from hepx.data.store import is_dataset_dir, read_manifest, write_dataset
    from hepx.data.writer import DatasetPart

    for value, name in ((pocket_cutoff, "pocket_cutoff"), (chain_cutoff, "chain_cutoff")):
        if not value > 0:
            raise InputError(f"{name} must be a positive distance in Å, got {value}")
    if not threshold_nm > 0:
        raise InputError(f"threshold_nm must be a positive affinity in nM, got {threshold_nm}")
    check = partial(
        check_output, overwrite=overwrite, is_ours=is_dataset_dir, what="output directory"
    )
    check(out_dir)
    _require("Bio.PDB", "Biopython")
    _require("rdkit.Chem", "RDKit")
    affinity_file = Path(affinity_file)
    affinities = read_affinities(affinity_file)
    usable, skipped = _usable(_find_complexes(inputs), affinities, affinity_file)
    if skipped:
        log.warning("skipping %d complex(es) whose affinity is an IC50 or a bound", len(skipped))
    with atomic_dir(out_dir, check=check) as tmp:
        part = DatasetPart(tmp / ".parts" / "00000")
        for i, (_, directory, molar) in enumerate(usable):
            c = read_complex(directory, pocket_cutoff=pocket_cutoff, chain_cutoff=chain_cutoff)
            part.append(_complex_arrays(c, i, molar, threshold_nm))
        part.close({"complexes": len(usable), "skipped_affinity": len(skipped)})
        rules = {"pocket_cutoff": pocket_cutoff, "chain_cutoff": chain_cutoff}
        rules |= {"threshold_nm": threshold_nm, "affinity_file": str(affinity_file)}
        extra = {
            "source_files": [str(d) for _, d, _ in usable],
            "plbind": {**rules, "complex_ids": [c for c, _, _ in usable], "skipped": skipped},
        }
        write_dataset(tmp, [part.directory], extra_manifest=extra)
    return read_manifest(out_dir)
