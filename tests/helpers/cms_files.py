"""Hand-built CMS endcap-muon ntuples with known content, in the producer's layout."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

HIT_INT16 = (
    "endcap",
    "station",
    "ring",
    "sector",
    "subsector",
    "chamber",
    "cscid",
    "bx",
    "type",
    "neighbor",
    "strip",
    "wire",
    "roll",
    "quality",
    "pattern",
    "bend",
    "time",
    "fr",
)
HIT_FLOAT = ("sim_phi", "sim_theta", "sim_eta", "sim_r", "sim_z")


def random_hits(rng, n_events, *, signal_every=3, mean_hits=25):
    """Per-event hit tables as a dict of jagged arrays, plus truth arrays."""
    counts = rng.poisson(mean_hits, n_events)
    counts[5 % n_events] = 0  # one empty event
    n = int(counts.sum())
    ev = np.repeat(np.arange(n_events), counts)
    is_sig_event = (np.arange(n_events) % signal_every) == 0
    truth = (rng.random(n) < 0.3) & is_sig_event[ev]
    station = rng.integers(1, 5, n)
    station[truth] = 1
    htype = rng.integers(0, 5, n)
    htype[truth] = rng.integers(1, 5, int(truth.sum()))
    neighbor = (rng.random(n) < 0.1).astype(int)
    neighbor[truth] = 0
    eta = rng.uniform(1.2, 2.4, n) * rng.choice([-1, 1], n)
    phi = rng.uniform(-180, 180, n)
    fields = {
        "endcap": np.sign(eta).astype(np.int16),
        "station": station.astype(np.int16),
        "ring": rng.integers(1, 4, n).astype(np.int16),
        "sector": rng.integers(1, 7, n).astype(np.int16),
        "subsector": rng.integers(0, 3, n).astype(np.int16),
        "chamber": rng.integers(1, 37, n).astype(np.int16),
        "cscid": rng.integers(1, 10, n).astype(np.int16),
        "bx": np.zeros(n, np.int16),
        "type": htype.astype(np.int16),
        "neighbor": neighbor.astype(np.int16),
        "strip": rng.integers(0, 100, n).astype(np.int16),
        "wire": rng.integers(0, 100, n).astype(np.int16),
        "roll": np.zeros(n, np.int16),
        "quality": rng.integers(0, 16, n).astype(np.int16),
        "pattern": rng.integers(0, 10, n).astype(np.int16),
        "bend": rng.integers(-16, 16, n).astype(np.int16),
        "time": np.zeros(n, np.int16),
        "fr": rng.integers(0, 2, n).astype(np.int16),
        "emtf_phi": rng.integers(0, 5000, n).astype(np.int32),
        "emtf_theta": rng.integers(0, 100, n).astype(np.int32),
        "sim_phi": phi.astype(np.float32),
        "sim_theta": np.degrees(2 * np.arctan(np.exp(-np.abs(eta)))).astype(np.float32),
        "sim_eta": eta.astype(np.float32),
        "sim_r": rng.uniform(100, 600, n).astype(np.float32),
        "sim_z": (np.sign(eta) * 700).astype(np.float32),
        "truth_tau": truth.astype(np.int16),
    }
    return counts, fields, is_sig_event


def write_cms(path, counts, fields, n_gen_tau, *, tree="Ntuplizer/MuonTrackTree", mismatch=None):
    hits = {k: ak.unflatten(v, counts) for k, v in fields.items()}
    if mismatch is not None:  # drop the last hit of one branch in event `mismatch`
        name, event = mismatch
        arr = ak.to_list(hits[name])
        arr[event] = arr[event][:-1]
        hits[name] = ak.values_astype(ak.Array(arr), fields[name].dtype)
    with uproot.recreate(path) as f:
        if mismatch is None:
            f.mktree(
                tree,
                {"mu_hit": ak.zip(hits).type.content, "n_gen_tau": np.int32},
                counter_name=lambda c: "n_" + c,
                field_name=lambda outer, inner: f"{outer}_{inner}",
            )
            f[tree].extend({"mu_hit": ak.zip(hits), "n_gen_tau": n_gen_tau.astype(np.int32)})
        else:  # independent jagged branches, so their lengths can disagree
            types = {f"mu_hit_{k}": v.type.content for k, v in hits.items()}
            f.mktree(tree, {**types, "n_gen_tau": np.int32})
            f[tree].extend(
                {
                    **{f"mu_hit_{k}": v for k, v in hits.items()},
                    "n_gen_tau": n_gen_tau.astype(np.int32),
                }
            )
