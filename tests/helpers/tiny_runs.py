"""Shared settings of the tests' tiny training runs."""


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
