"""SynMol from real molecules: the "logic8" task of the graph-attribution benchmark in 3D.

:func:`simulate_synmol` writes ``out_dir/synmol.parquet`` (hepx's generic point-cloud layout,
see :func:`hepx.io.read_generic`) and ``out_dir/manifest.json`` (parameters, provenance and the
statistics of the selection).

* **Molecules**: the MOSES training set (ZINC clean leads, 1,584,663 SMILES; molecular weight
  250-350 Da) shipped with the ``molsets`` package, read from its data file
  ``moses/dataset/data/train.csv.gz`` without importing ``moses``.
* **Rule** (logic8 of Sanchez-Lengeling et al., NeurIPS 2020; ``graph_attribution/tasks.py`` of
  google-research/graph-attribution): a molecule is positive when it matches both SMARTS
  :data:`RULE_SMARTS` (``unbranched alkane`` AND ``carbonyl``), on the hydrogen-free molecule
  (as the benchmark, which parses its SMILES without hydrogens, so ``D`` counts heavy
  neighbours). The ground truth of a positive is the union of every match of both patterns
  (the benchmark's last, all-matches truth); a negative has none.
* **Selection**: the class ratio (default 18:82, the LRI paper's Table 1) comes from choosing
  molecules, not from changing the rule: the rows are visited in a seeded random order and
  the first molecules of each class that embed are kept until each class has its count.
* **Points**: heavy atoms only, 3D positions (angstrom) from RDKit's ETKDGv3 embedding with
  hydrogens, seeded per molecule, then an MMFF94 optimisation; hydrogens are removed after.
  One feature, ``x_0``, the atomic number. A failed embedding or a molecule without MMFF
  parameters is skipped and counted; nothing is dropped silently.

Reproducibility: the visiting order comes from ``seed``, and each molecule's embedding seed
from ``(seed, row)``, so the same arguments give identical files, whatever ``workers`` is.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import numbers
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hepx.atomic import atomic_file, check_creatable, check_files_free, output_dir
from hepx.errors import ConfigError, HepxError, InputError

log = logging.getLogger("hepx")

__all__ = [
    "FILE_NAME",
    "INSTALL_HINT",
    "MANIFEST_NAME",
    "RULE_SMARTS",
    "MissingPackageError",
    "describe",
    "embed_molecule",
    "logic8",
    "moses_smiles_path",
    "simulate_synmol",
]

FILE_NAME = "synmol.parquet"
MANIFEST_NAME = "manifest.json"
#: The two fragments of logic8, as the benchmark's code defines them (combined with AND).
RULE_SMARTS = {
    "unbranched alkane": "[R0;D2,D1][R0;D2][R0;D2,D1]",
    "carbonyl": "[CX3]=O",
}
#: The command that installs what SynMol needs (rdkit: a wheel; molsets: its pins do not build).
INSTALL_HINT = "pip install 'hepx[mol]' && pip install --no-deps molsets"
#: The MOSES training set inside the installed molsets distribution.
MOSES_FILE = "moses/dataset/data/train.csv.gz"
#: MMFF iterations; MOSES molecules converge well within this.
MMFF_MAX_ITERS = 2000
#: RDKit returns at most this many matches per pattern (the ground truth is their union).
MAX_MATCHES = 100_000
#: Molecules sent to a worker process at a time.
CHUNK = 8


class MissingPackageError(HepxError, ImportError):
    """RDKit or the MOSES molecules of ``molsets`` are not installed."""


def _missing(what: str) -> MissingPackageError:
    return MissingPackageError(
        f"hepx simulate synmol needs RDKit and the MOSES molecules of molsets ({what}); "
        f"install them with: {INSTALL_HINT}"
    )


def _rdkit():
    """``(Chem, AllChem)`` of RDKit, with its per-molecule log messages off."""
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem
    except ImportError:
        raise _missing("rdkit is not installed") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem, AllChem


def moses_smiles_path() -> Path:
    """The MOSES training SMILES (``train.csv.gz``) of the installed ``molsets`` package,
    found from the distribution's files (``moses`` itself is not imported: its ``__init__``
    needs packages that do not install).

    Example
    -------
    >>> moses_smiles_path().name  # doctest: +SKIP
    'train.csv.gz'
    """
    candidates = []
    try:
        dist = importlib.metadata.distribution("molsets")
        candidates.append(Path(str(dist.locate_file(MOSES_FILE))))
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec("moses")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            candidates.append(Path(root).parent / MOSES_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise _missing("molsets is not installed")


@functools.lru_cache(maxsize=1)
def _patterns() -> tuple[Any, ...]:
    chem, _ = _rdkit()
    return tuple(chem.MolFromSmarts(s) for s in RULE_SMARTS.values())


def logic8(mol: Any) -> tuple[bool, np.ndarray]:
    """The logic8 label of an RDKit molecule without hydrogens, and its ground truth: a
    boolean per atom, the union of all matches of both patterns for a positive, all False for
    a negative.

    Example
    -------
    >>> from rdkit import Chem  # doctest: +SKIP
    >>> label, atoms = logic8(Chem.MolFromSmiles("CCCC(=O)N"))  # doctest: +SKIP
    >>> label, atoms.astype(int).tolist()  # doctest: +SKIP
    (True, [1, 1, 1, 1, 1, 0])
    """
    mask = np.zeros(mol.GetNumAtoms(), dtype=bool)
    matches = [mol.GetSubstructMatches(p, maxMatches=MAX_MATCHES) for p in _patterns()]
    if not all(matches):
        return False, mask
    for found in matches:
        for match in found:
            mask[list(match)] = True
    return True, mask


def embed_molecule(smiles: str, random_seed: int) -> tuple[np.ndarray | None, str]:
    """3D positions (angstrom, float32, one row per heavy atom in the SMILES' atom order):
    ETKDGv3 embedding with hydrogens, seeded, then MMFF94 optimisation; hydrogens removed.

    Returns the positions and a status: ``"ok"``, ``"not_converged"`` (MMFF stopped after
    :data:`MMFF_MAX_ITERS` iterations; positions kept), ``"embedding_failed"`` or
    ``"mmff_failed"`` (no MMFF parameters; both with positions ``None``).

    Example
    -------
    >>> pos, status = embed_molecule("CCO", random_seed=1)  # doctest: +SKIP
    >>> pos.shape, status  # doctest: +SKIP
    ((3, 3), 'ok')
    """
    chem, allchem = _rdkit()
    mol = chem.MolFromSmiles(smiles)
    if mol is None:
        return None, "embedding_failed"
    heavy = mol.GetNumAtoms()
    mol = chem.AddHs(mol)  # hydrogens are appended after the heavy atoms
    params = allchem.ETKDGv3()
    params.randomSeed = int(random_seed)
    if allchem.EmbedMolecule(mol, params) != 0:
        return None, "embedding_failed"
    result = allchem.MMFFOptimizeMolecule(mol, maxIters=MMFF_MAX_ITERS)
    if result < 0:
        return None, "mmff_failed"
    pos = mol.GetConformer().GetPositions()[:heavy].astype(np.float32)
    return pos, "ok" if result == 0 else "not_converged"


def _embed_task(task: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    return embed_molecule(*task)


def _molecule_seed(seed: int, row: int) -> int:
    """RDKit's seed of one molecule (a non-negative C int), from the run's seed and its row."""
    state = np.random.SeedSequence([seed, row]).generate_state(1, np.uint32)[0]
    return int(state >> 1)


class _SmilesTable:
    """The rows of a (gzipped) one-column SMILES CSV with a header, held as one bytes object
    and line offsets (1.6 M rows: 60 MB, no Python string per row)."""

    def __init__(self, path: Path):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            self.raw = f.read()
        ends = np.flatnonzero(np.frombuffer(self.raw, np.uint8) == ord("\n"))
        if not self.raw.endswith(b"\n"):
            ends = np.append(ends, len(self.raw))
        self.ends = ends[1:]  # the first line is the header
        self.starts = ends[:-1] + 1

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, row: int) -> str:
        line = self.raw[self.starts[row] : self.ends[row]].decode()
        return line.split(",", 1)[0].strip()


@dataclass
class _Candidate:
    rank: int  # position in the visiting order
    row: int  # row of the source file (0 = first molecule after the header)
    smiles: str
    label: bool
    mask: np.ndarray
    atomic_numbers: np.ndarray


def _candidates(table: _SmilesTable, order: np.ndarray, counts: Counter) -> Iterator[_Candidate]:
    """The molecules in visiting order, labelled; unparsable SMILES are counted and skipped."""
    chem, _ = _rdkit()
    for rank, row in enumerate(order):
        smiles = table[int(row)]
        mol = chem.MolFromSmiles(smiles) if smiles else None
        counts["molecules_scanned"] += 1
        if mol is None:
            counts["unparsable_smiles"] += 1
            continue
        label, mask = logic8(mol)
        counts["positives_scanned"] += label
        z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int16)
        yield _Candidate(rank, int(row), smiles, label, mask, z)


def _select(
    candidates: Iterator[_Candidate],
    wanted: dict[bool, int],
    embed: Callable[[list[tuple[str, int]]], Iterator[tuple[np.ndarray | None, str]]],
    seed: int,
    counts: Counter,
    bar: Any,
) -> list[tuple[_Candidate, np.ndarray]]:
    """The first ``wanted[label]`` molecules of each class (in visiting order) that embed.

    Each round embeds exactly as many pending molecules of a class as it still needs, so the
    failures counted are those met before the class was full, whatever the rounds look like.
    """
    need = dict(wanted)
    pending: dict[bool, deque[_Candidate]] = {False: deque(), True: deque()}
    kept: list[tuple[_Candidate, np.ndarray]] = []
    while need[False] or need[True]:
        for label in (False, True):
            while len(pending[label]) < need[label]:
                cand = next(candidates, None)
                if cand is None:
                    raise InputError(
                        f"the source holds too few molecules: {need[label]} more "
                        f"{'positive' if label else 'negative'} ones needed after "
                        f"{counts['molecules_scanned']} molecules; ask for fewer samples"
                    )
                pending[cand.label].append(cand)
        batch = [pending[label].popleft() for label in (False, True) for _ in range(need[label])]
        tasks = [(c.smiles, _molecule_seed(seed, c.row)) for c in batch]
        for cand, (pos, status) in zip(batch, embed(tasks), strict=True):
            counts[status] += 1
            if pos is None:
                continue
            kept.append((cand, pos))
            need[cand.label] -= 1
            bar.update(1)
    return sorted(kept, key=lambda item: item[0].rank)


def _statistics(kept: list[tuple[_Candidate, np.ndarray]], counts: Counter) -> dict[str, Any]:
    """What the selection gave (stored in the manifest and printed by the command)."""
    labels = np.array([c.label for c, _ in kept], dtype=bool)
    points = np.array([len(c.mask) for c, _ in kept])
    important = np.array([int(c.mask.sum()) for c, _ in kept])
    n, n_pos = len(kept), int(labels.sum())
    scanned = counts["molecules_scanned"] - counts["unparsable_smiles"]
    return {
        "samples": n,
        "positives": n_pos,
        "negatives": n - n_pos,
        "class_ratio": f"{100 * n_pos / n:.1f}:{100 * (n - n_pos) / n:.1f}",
        "mean_points": round(float(points.mean()), 3),
        "mean_important_points_per_positive": (
            round(float(important[labels].mean()), 3) if n_pos else 0.0
        ),
        "molecules_scanned": counts["molecules_scanned"],
        "positive_fraction_scanned": round(counts["positives_scanned"] / max(scanned, 1), 4),
        "unparsable_smiles": counts["unparsable_smiles"],
        "embedding_failures": counts["embedding_failed"],
        "mmff_failures": counts["mmff_failed"],
        "mmff_not_converged": counts["not_converged"],
    }


def _write_parquet(path: Path, kept: list[tuple[_Candidate, np.ndarray]]) -> None:
    import awkward as ak

    sizes = np.array([len(c.mask) for c, _ in kept], dtype=np.int64)
    pos = np.concatenate([p for _, p in kept]).astype(np.float32)
    columns: dict[str, Any] = {
        "y": np.array([c.label for c, _ in kept], dtype=np.int8),
        "sample_id": np.array([c.row for c, _ in kept], dtype=np.int64),
    }
    for d in range(3):
        columns[f"pos_{d}"] = ak.unflatten(np.ascontiguousarray(pos[:, d]), sizes)
    z = np.concatenate([c.atomic_numbers for c, _ in kept]).astype(np.float32)
    columns["x_0"] = ak.unflatten(z, sizes)
    mask = np.concatenate([c.mask for c, _ in kept]).astype(np.int8)
    columns["node_label"] = ak.unflatten(mask, sizes)
    columns["smiles"] = ak.Array([c.smiles for c, _ in kept])
    with atomic_file(path) as tmp:
        ak.to_parquet(ak.zip(columns, depth_limit=1), tmp)


def _manifest(source: Path, params: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    import rdkit

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return {
        "format": "hepx-synmol",
        "version": 1,
        "file": FILE_NAME,
        "source": {
            "name": "MOSES train (ZINC), molsets " + importlib.metadata.version("molsets"),
            "file": MOSES_FILE,
            "sha256": digest,
        },
        "rule": {
            "task": "logic8 (google-research/graph-attribution)",
            "smarts": RULE_SMARTS,
            "combine": "AND",
        },
        "points": "heavy atoms; pos_0..2 in angstrom (ETKDGv3 + MMFF94); x_0 = atomic number",
        "rdkit_version": rdkit.__version__,
        "parameters": params,
        "statistics": stats,
    }


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _embedder(workers: int, stack: Any):
    """``embed(tasks)``: here (one worker) or in a pool of processes (spawned: no fork of a
    process that may hold torch's threads); results come in task order."""
    if workers == 1:
        return lambda tasks: map(_embed_task, tasks)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    return lambda tasks: pool.map(_embed_task, tasks, chunksize=CHUNK)


def simulate_synmol(
    out_dir: str | os.PathLike,
    *,
    samples: int,
    seed: int = 0,
    positive_fraction: float = 0.18,
    workers: int = 1,
    progress: bool | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build SynMol from the MOSES molecules and write ``out_dir/synmol.parquet`` (generic
    layout plus a ``smiles`` column; ``sample_id`` is the molecule's row in the MOSES file)
    and ``out_dir/manifest.json``.

    Parameters
    ----------
    samples
        Molecules to keep, >= 1 (the paper's SynMol has 8,663).
    seed
        Non-negative seed of the visiting order and of the embeddings.
    positive_fraction
        Fraction of positive molecules, in [0, 1] (rounded to whole molecules); the paper's
        class ratio is 18:82.
    workers
        Processes that embed molecules (the files do not depend on it).
    progress
        Progress bar (default: on a terminal).
    overwrite
        Replace the files already in ``out_dir`` (else refused before any molecule is built).

    Returns
    -------
    dict
        The statistics (also in the manifest): samples, class ratio, mean points, mean
        important points per positive, molecules scanned, embedding and MMFF failures.

    Raises
    ------
    MissingPackageError
        Without RDKit or molsets (the message names the install command).

    Example
    -------
    >>> stats = simulate_synmol("work/sim/synmol", samples=500, seed=1)  # doctest: +SKIP
    >>> stats["class_ratio"]  # doctest: +SKIP
    '18.0:82.0'
    """
    import contextlib

    from hepx.progress import progress_bar

    samples = _check_int("samples", samples, 1, 1_000_000)
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    workers = _check_int("workers", workers, 1, 1024)
    if isinstance(positive_fraction, bool) or not 0.0 <= float(positive_fraction) <= 1.0:
        raise ConfigError(f"positive_fraction must be in [0, 1], got {positive_fraction!r}")
    _rdkit()
    source = moses_smiles_path()
    out_dir = Path(out_dir)
    check_creatable(out_dir)
    check_files_free([out_dir / FILE_NAME, out_dir / MANIFEST_NAME], overwrite=overwrite)
    n_pos = int(np.floor(float(positive_fraction) * samples + 0.5))
    table = _SmilesTable(source)
    order = np.random.default_rng(seed).permutation(len(table))
    counts: Counter = Counter()
    wanted = {True: n_pos, False: samples - n_pos}
    with contextlib.ExitStack() as stack:
        embed = _embedder(workers, stack)
        bar = stack.enter_context(progress_bar(total=samples, desc="synmol", progress=progress))
        kept = _select(_candidates(table, order, counts), wanted, embed, seed, counts, bar)
    stats = _statistics(kept, counts)
    params = {"samples": samples, "seed": seed, "positive_fraction": float(positive_fraction)}
    with output_dir(out_dir):
        _write_parquet(out_dir / FILE_NAME, kept)
        text = json.dumps(_manifest(source, params, stats), indent=2, sort_keys=True) + "\n"
        with atomic_file(out_dir / MANIFEST_NAME) as tmp:
            tmp.write_text(text)
    return stats


def describe(stats: dict[str, Any]) -> Sequence[str]:
    """The statistics of :func:`simulate_synmol` as lines for the log.

    Example
    -------
    >>> describe({"samples": 2, "positives": 1, "negatives": 1, "class_ratio": "50.0:50.0",
    ...           "mean_points": 20.0, "mean_important_points_per_positive": 6.0,
    ...           "molecules_scanned": 3, "positive_fraction_scanned": 0.3333,
    ...           "unparsable_smiles": 0, "embedding_failures": 0, "mmff_failures": 0,
    ...           "mmff_not_converged": 0})[0]
    'samples 2 (1 positive : 1 negative = 50.0:50.0)'
    """
    return [
        f"samples {stats['samples']} ({stats['positives']} positive : {stats['negatives']} "
        f"negative = {stats['class_ratio']})",
        f"mean points per sample {stats['mean_points']:.2f}, mean important points per "
        f"positive sample {stats['mean_important_points_per_positive']:.2f}",
        f"molecules scanned {stats['molecules_scanned']} (positive by the rule: "
        f"{100 * stats['positive_fraction_scanned']:.1f} %), unparsable SMILES "
        f"{stats['unparsable_smiles']}",
        f"embedding failures {stats['embedding_failures']}, MMFF failures "
        f"{stats['mmff_failures']}, MMFF not converged {stats['mmff_not_converged']} (kept)",
    ]
