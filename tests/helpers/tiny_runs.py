"""Shared settings of the tests' tiny training runs (seconds on a CPU)."""

#: The model of the session runs (tests/conftest.py): a small EGNN.
TINY_MODEL = {"backbone": "egnn", "hidden_channels": 8, "num_layers": 2}


def tiny_tau3mu_config(dataset) -> dict:
    """A one-epoch LRI-Bernoulli EGNN run on a Tau3Mu dataset directory (seconds on a CPU)."""
    return {
        "dataset": {"path": str(dataset), "kind": "tau3mu"},
        "model": {
            "backbone": "egnn",
            "method": "lri_bernoulli",
            "hidden_channels": 8,
            "num_layers": 2,
            "graph": {"kind": "radius", "r": 1.0},
        },
        "train": {"epochs": 1, "batch_size": 32},
        "eval": {"precision_k": [3]},
    }


def tiny_config(dataset, kind: str, method: str) -> dict:
    """A one-epoch run of the tiny EGNN with ``method`` on a dataset of ``kind``: ActsTrack
    positions go to metres (``pos_scale``), precision@k at the hit counts of the toy files."""
    model = {**TINY_MODEL, "method": method}
    if kind == "actstrack":
        model["pos_scale"] = 0.001
    return {
        "dataset": {"path": str(dataset), "kind": kind},
        "model": model,
        "train": {"epochs": 1, "batch_size": 16, "seed": 0},
        "eval": {"precision_k": [4, 8] if kind == "actstrack" else [3]},
    }
