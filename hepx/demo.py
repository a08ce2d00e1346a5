"""``hepx demo``: the whole chain on built-in defaults, end to end.

simulate -> convert -> train -> explain -> plot, for ActsTrack-sim and Tau3Mu-sim.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("hepx")

#: Event counts of the demo, and of ``--quick`` (used by the tests).
SIZES = {"full": {"actstrack": 1500, "tau3mu": 20000}, "quick": {"actstrack": 200, "tau3mu": 1500}}


def run_demo(out: str | os.PathLike = "hepx-demo", *, quick: bool = False, seed: int = 0) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths of what it made."""
    from hepx import sim
    from hepx.data import convert

    out = Path(out)
    sizes = SIZES["quick" if quick else "full"]
    made: dict[str, Path] = {}
    t0 = time.perf_counter()
    acts_sim = out / "sim" / "actstrack_2T"
    sim.simulate_actstrack(acts_sim, events=sizes["actstrack"], bfield=2.0, seed=seed)
    tau_sim = out / "sim" / "tau3mu"
    sim.simulate_tau3mu(tau_sim, events=sizes["tau3mu"], seed=seed)
    log.info("[1/3] simulated ActsTrack (2 T) and Tau3Mu events in %.0f s", time.perf_counter() - t0)

    t0 = time.perf_counter()
    made["actstrack_data"] = out / "data" / "actstrack_2T"
    convert("actstrack", [acts_sim], made["actstrack_data"])
    made["tau3mu_data"] = out / "data" / "tau3mu"
    convert("tau3mu", [tau_sim / "ntuple.root"], made["tau3mu_data"])
    log.info("[2/3] converted both to point-cloud datasets in %.0f s", time.perf_counter() - t0)
    return made
