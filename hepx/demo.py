"""``hepx demo``: the whole chain on built-in defaults, end to end.

simulate -> convert -> train (LRI-Bernoulli) -> explain -> plot, for ActsTrack-sim (2 T) and
Tau3Mu-sim. Sizes are small so it runs in minutes on a laptop CPU; ``quick`` is for the tests.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("hepx")

#: Events simulated and epochs trained by the demo, and by ``--quick`` (used by the tests).
SIZES: dict[str, dict[str, int]] = {
    "full": {"actstrack": 1500, "tau3mu": 8000, "epochs_actstrack": 12, "epochs_tau3mu": 5},
    "quick": {"actstrack": 120, "tau3mu": 1200, "epochs_actstrack": 2, "epochs_tau3mu": 2},
}


#: Per dataset kind: the demo's model settings, precision k list and batch size.
_KIND_SETTINGS: dict[str, dict[str, Any]] = {
    "actstrack": {
        "model": {
            "pos_scale": 0.001,
            "frame": "beam",
            "graph": {"kind": "knn", "k": 5, "space": "direction"},
        },
        "ks": [12, 24, 30],
        "batch": 64,
    },
    "tau3mu": {
        "model": {"graph": {"kind": "radius", "r": 1.0, "max_num_neighbors": 32}},
        "ks": [3, 7, 10],
        "batch": 128,
    },
}


def demo_run_config(kind: str, data: Path, epochs: int, *, quick: bool) -> dict[str, Any]:
    """A short LRI-Bernoulli DGCNN run on ``data`` (reference settings, fewer epochs)."""
    settings = _KIND_SETTINGS[kind]
    model: dict[str, Any] = {
        "backbone": "dgcnn",
        "method": "lri_bernoulli",
        "bernoulli": {"final_r": 0.7},
        **settings["model"],
    }
    if quick:
        model |= {"hidden_channels": 16, "num_layers": 2}
    return {
        "dataset": {"path": str(data), "kind": kind},
        "model": model,
        "train": {
            "epochs": epochs,
            "warmup": 1,
            "batch_size": settings["batch"],
            "info_loss_coef": 0.1,
            "seed": 0,
        },
        "eval": {"precision_k": settings["ks"]},
    }


def run_demo(
    out: str | os.PathLike = "hepx-demo", *, quick: bool = False, seed: int = 0
) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths of what it made."""
    from hepx import sim
    from hepx.data import convert
    from hepx.training import train

    out = Path(out)
    size = SIZES["quick" if quick else "full"]
    made: dict[str, Path] = {}
    t0 = time.perf_counter()
    acts_sim = out / "sim" / "actstrack_2T"
    sim.simulate_actstrack(acts_sim, events=size["actstrack"], bfield=2.0, seed=seed)
    tau_sim = out / "sim" / "tau3mu"
    sim.simulate_tau3mu(tau_sim, events=size["tau3mu"], seed=seed)
    log.info(
        "[1/4] simulated ActsTrack (2 T) and Tau3Mu events in %.0f s", time.perf_counter() - t0
    )

    t0 = time.perf_counter()
    made["actstrack_data"] = out / "data" / "actstrack_2T"
    convert("actstrack", [acts_sim], made["actstrack_data"])
    made["tau3mu_data"] = out / "data" / "tau3mu"
    convert("tau3mu", [tau_sim / "ntuple.root"], made["tau3mu_data"])
    log.info("[2/4] converted both to point-cloud datasets in %.0f s", time.perf_counter() - t0)

    results = {}
    for kind in ("actstrack", "tau3mu"):
        t0 = time.perf_counter()
        run = out / "runs" / f"{kind}_lri_bernoulli_dgcnn"
        cfg = demo_run_config(kind, made[f"{kind}_data"], size[f"epochs_{kind}"], quick=quick)
        results[kind] = train(cfg, run, resume=(run / "checkpoints" / "last.pt").exists())
        made[f"{kind}_run"] = run
        log.info(
            "[3/4] trained LRI-Bernoulli DGCNN on %s in %.0f s", kind, time.perf_counter() - t0
        )

    post = _explain_and_plot(out, made, acts_sim, tau_sim)
    made.update(post)
    summary = out / "summary.json"
    summary.write_text(json.dumps({k: _round(v) for k, v in results.items()}, indent=2) + "\n")
    made["summary"] = summary
    for kind, res in results.items():
        log.info(
            "%s: test prediction AUC %.3f, interpretation ROC AUC %.3f",
            kind,
            res["test_pred_auc"],
            res.get("test_interp_auc", float("nan")),
        )
    log.info("demo outputs in %s", out)
    return made


def _explain_and_plot(
    out: Path, made: dict[str, Path], acts_sim: Path, tau_sim: Path
) -> dict[str, Path]:
    """Per-hit importance back onto the ROOT inputs, and the interpretation plots."""
    from hepx.plot import load_events, make_plots
    from hepx.scoring import score_files

    t0 = time.perf_counter()
    made_here: dict[str, Path] = {}
    for kind, inputs in (("actstrack", [acts_sim]), ("tau3mu", [tau_sim / "ntuple.root"])):
        expl = out / "explain" / kind
        score_files(made[f"{kind}_run"], inputs, expl, overwrite=True, progress=False)
        made_here[f"{kind}_explain"] = expl
        plots = out / "plots" / kind
        make_plots(load_events(expl), kinds="all", out=plots)
        made_here[f"{kind}_plots"] = plots
    log.info(
        "[4/4] explained the ROOT inputs and made the plots in %.0f s", time.perf_counter() - t0
    )
    return made_here


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}
