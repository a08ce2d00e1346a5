"""Make data/synmol_mini.parquet: a small SynMol-like example in hepx's generic layout.

Molecule-like clouds: a backbone of carbon atoms (random walk, 1.4-1.6 A bonds) with hydrogens,
plus planted functional groups. Label (a logic rule, as in SynMol): 1 when the molecule has a
nitro group (N + two O at 1.22 A) AND a hydroxyl group (O-H 0.96 A on a carbon). Ground truth:
the atoms of those two groups. Negatives carry at most one of the groups.

    python data/make_synmol_mini.py [--samples 400] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np

from hepx.io import write_generic

ATOM = {"C": 0, "H": 1, "N": 2, "O": 3}


def _unit(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make(samples: int, seed: int):
    rng = np.random.default_rng(seed)
    pos_l, x_l, lab_l, y = [], [], [], []
    for i in range(samples):  # a one-off data generator: clarity over speed
        n_c = int(rng.integers(6, 14))
        steps = _unit(rng, n_c) * rng.uniform(1.4, 1.6, (n_c, 1))
        carbons = np.cumsum(steps, axis=0)
        atoms = [(p, "C", 0) for p in carbons]
        atoms += [(c + _unit(rng, 1)[0] * 1.09, "H", 0) for c in carbons if rng.random() < 0.6]
        kind = i % 4  # 0: both groups (positive), 1: nitro only, 2: hydroxyl only, 3: none
        if kind in (0, 1):
            c = carbons[rng.integers(n_c)]
            n = c + _unit(rng, 1)[0] * 1.47
            d = _unit(rng, 1)[0]
            atoms += [
                (n, "N", 1),
                (n + d * 1.22, "O", 1),
                (n - d * 1.22 + _unit(rng, 1)[0] * 0.3, "O", 1),
            ]
        if kind in (0, 2):
            c = carbons[rng.integers(n_c)]
            o = c + _unit(rng, 1)[0] * 1.43
            atoms += [(o, "O", 1), (o + _unit(rng, 1)[0] * 0.96, "H", 1)]
        if kind == 3 and rng.random() < 0.5:  # a decoy lone oxygen (carbonyl-like)
            atoms.append((carbons[0] + _unit(rng, 1)[0] * 1.23, "O", 0))
        pos_l.append(np.array([a[0] for a in atoms], np.float32))
        x_l.append(np.array([[ATOM[a[1]]] for a in atoms], np.float32))
        lab_l.append(np.array([a[2] if kind == 0 else 0 for a in atoms], np.int8))
        y.append(int(kind == 0))
    return ak.Array(pos_l), ak.Array(x_l), ak.Array(lab_l), np.array(y, np.int8)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("synmol_mini.parquet"))
    args = ap.parse_args()
    pos, x, lab, y = make(args.samples, args.seed)
    write_generic(args.out, pos=pos, y=y, x=x, node_label=lab, sample_id=np.arange(len(y)))
    print(f"wrote {args.out}: {len(y)} samples, {int(y.sum())} positive")


if __name__ == "__main__":
    main()
