"""Which dropout shifts a trained run's evaluation-mode logits?

    python benchmarks/dropout_calibration.py RUN_DIR [RUN_DIR ...]

Scores the run's test split in evaluation mode, then again with the dropout of one location
switched back to training mode (random, seeded): ``message`` (inside the per-edge message
MLPs), ``node`` (each layer's node update), ``head`` (classifier head) and ``extractor`` (LRI).
Prints ROC AUC, accuracy at logit 0 and the mean logit per class. A location whose dropout
restores a very different calibration than evaluation mode is one whose train / evaluation
difference the following BatchNorm statistics do not absorb. Runs of checkpoint version 1
(before ``model.message_dropout``) have message dropout; current runs do not.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import score_test_split
from sklearn.metrics import roc_auc_score
from torch import nn

from hepx.models.backbones.base import Dropout


def dropout_locations(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The model's dropout modules by location (``message``, ``node``, ``head``, ``extractor``)."""
    groups: dict[str, list[nn.Module]] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, (Dropout, nn.Dropout)):
            continue
        parts = name.split(".")
        if "extractor" in parts:
            where = "extractor"
        elif "head" in parts:
            where = "head"
        elif "convs" in parts:
            where = "message"
        else:
            where = "node"
        groups.setdefault(where, []).append(mod)
    return groups


def calibration(run: str) -> list[dict]:
    rows = []
    for on in ((), ("message",), ("node",), ("head",), ("extractor",)):

        def prepare(model: nn.Module, on=on) -> None:
            for where, mods in dropout_locations(model).items():
                for mod in mods:
                    mod.train(where in on)
            torch.manual_seed(0)

        scored = score_test_split(run, prepare=prepare)
        s, y = scored["logit"], scored["y"]
        rows.append(
            {
                "dropout on": ", ".join(on) or "none (evaluation mode)",
                "auc": roc_auc_score(y, s),
                "acc": float(((s > 0) == (y > 0.5)).mean()),
                "logit_bkg": float(np.mean(s[y < 0.5])),
                "logit_sig": float(np.mean(s[y > 0.5])),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        print(f"\n{run}")
        print("| dropout on | pred AUC | accuracy | mean logit bkg | mean logit sig |")
        print("|---|---|---|---|---|")
        for r in calibration(run):
            print(
                f"| {r['dropout on']} | {r['auc']:.3f} | {r['acc']:.3f} | "
                f"{r['logit_bkg']:.2f} | {r['logit_sig']:.2f} |"
            )


if __name__ == "__main__":
    main()
