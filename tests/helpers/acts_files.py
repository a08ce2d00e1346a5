"""Hand-built ACTS files with known truth, written with uproot in the producers' layouts."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

BARCODE = ("vertex_primary", "vertex_secondary", "particle", "generation", "sub_particle")


def packed(vp, vs, part, gen, sub):
    return (vp << 52) | (vs << 40) | (part << 24) | (gen << 16) | sub


def z_pair(rng, mass=91.2, flavour=13):
    """Back-to-back leptons of the given pair mass (Z at rest, with a small boost along z)."""
    m_l = 0.1057 if flavour == 13 else 0.000511
    p = np.sqrt((mass / 2) ** 2 - m_l**2)
    theta, phi = rng.uniform(0.6, 2.5), rng.uniform(-np.pi, np.pi)
    d = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    return [(flavour, -1.0, p * d, m_l), (-flavour, 1.0, -p * d, m_l)]


def build_events(n_events=12, seed=1):
    """Return per-event particle lists and the expected truth.

    Event kinds cycle: Z->mumu, background, Z->ee, background with a non-Z mu pair (mass 20),
    background with a same-sign pair at the Z mass, Z whose one lepton has only 2 hits.
    """
    rng = np.random.default_rng(seed)
    events = []
    for e in range(n_events):
        kind = e % 6
        parts = []
        if kind == 0:
            parts += z_pair(rng, 91.0, 13)
        elif kind == 2:
            parts += z_pair(rng, 92.5, 11)
        elif kind == 3:
            parts += z_pair(rng, 20.0, 13)
        elif kind == 4:
            a, b = z_pair(rng, 91.2, 13)
            parts += [a, (a[0], a[1], b[2], b[3])]  # same sign
        elif kind == 5:
            parts += z_pair(rng, 90.5, 13)
        n_pile = 12 + e % 3
        for _ in range(n_pile):
            pdg = int(rng.choice([211, -211, 321, 2212]))
            pt = rng.uniform(0.3, 3)
            d = rng.normal(size=3)
            parts.append((pdg, float(np.sign(pdg)), pt * d / np.hypot(d[0], d[1]), 0.1396))
        # number of hits per particle; kind 5: first lepton has just 2 hits
        nh = [int(rng.integers(4, 12)) for _ in parts]
        if kind == 5:
            nh[0] = 2
        expected_label = int(kind in (0, 2))
        signal = [i < 2 and kind in (0, 2) for i in range(len(parts))]
        events.append(
            {
                "event_id": 100 + 7 * e,
                "particles": parts,
                "n_hits": nh,
                "label": expected_label,
                "signal": signal,
            }
        )
    return events


def write_acts(
    directory,
    events,
    *,
    schema="v43",
    particles_layout="per_event",
    order="interleaved",
    seed=2,
    hits_without_particle=0,
):
    """Write hits.root and particles.root; returns nothing. Particle k of an event has barcode
    (vertex 1, particle k+1); hits of all events are shuffled together for order='interleaved'.
    ``hits_without_particle`` hits per event carry barcode (vertex 1, particle 999), which no
    particle has (noise, or a particle the writer did not record)."""
    rng = np.random.default_rng(seed)
    rows = []  # hit rows
    prow = []  # particle rows
    for ev in events:
        for k, ((pdg, q, p3, m), nh) in enumerate(zip(ev["particles"], ev["n_hits"], strict=True)):
            comps = (1, 0, k + 1, 0, 0)
            prow.append((ev["event_id"], comps, pdg, q, p3, m, nh))
            for i in range(nh):
                rows.append((ev["event_id"], comps, i, p3))
        for i in range(hits_without_particle):
            rows.append((ev["event_id"], (1, 0, 999, 0, 0), i, ev["particles"][0][2]))
    hit_order = rng.permutation(len(rows)) if order == "interleaved" else np.arange(len(rows))
    rows = [rows[i] for i in hit_order]
    n = len(rows)
    ev_id = np.array([r[0] for r in rows], dtype=np.uint32)
    comps = np.array([r[1] for r in rows], dtype=np.uint64)
    idx = np.array([r[2] for r in rows], dtype=np.int32)
    p3 = np.array([r[3] for r in rows], dtype=np.float32)
    vol = np.full(n, 8, np.uint64)
    lay = 2 * (idx.astype(np.uint64) + 1)
    sens = rng.integers(1, 1000, n).astype(np.uint64)
    geo = (vol << np.uint64(56)) | (lay << np.uint64(36)) | (sens << np.uint64(8))
    r = 30.0 + 40.0 * idx
    phi = np.arctan2(p3[:, 1], p3[:, 0])
    hits = {
        "event_id": ev_id,
        "geometry_id": geo,
        "tx": (r * np.cos(phi)).astype(np.float32),
        "ty": (r * np.sin(phi)).astype(np.float32),
        "tz": (r * p3[:, 2] / np.hypot(p3[:, 0], p3[:, 1])).astype(np.float32),
        "tt": r.astype(np.float32),
        "tpx": p3[:, 0],
        "tpy": p3[:, 1],
        "tpz": p3[:, 2],
        "te": np.linalg.norm(p3, axis=1).astype(np.float32),
        "deltapx": np.zeros(n, np.float32),
        "deltapy": np.zeros(n, np.float32),
        "deltapz": np.zeros(n, np.float32),
        "deltae": np.zeros(n, np.float32),
        "index": idx,
        "volume_id": vol.astype(np.uint32),
        "boundary_id": np.zeros(n, np.uint32),
        "layer_id": lay.astype(np.uint32),
        "approach_id": np.zeros(n, np.uint32),
        "sensitive_id": sens.astype(np.uint32),
    }
    if schema == "v43":
        hits["particle_id"] = packed(*comps.T)
    elif schema == "v44.3":
        for j, name in enumerate(BARCODE):
            hits[f"barcode_{name}"] = comps[:, j].astype(np.uint32)
    elif schema == "v44.0":
        hits["barcode"] = ak.unflatten(comps.astype(np.uint32).ravel(), np.full(n, 5))
    with uproot.recreate(f"{directory}/hits.root") as f:
        f.mktree(
            "hits", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in hits.items()}
        )
        f["hits"].extend(hits)

    pev = np.array([r[0] for r in prow], dtype=np.uint32)
    pc = np.array([r[1] for r in prow], dtype=np.uint64)
    pp = np.array([r[4] for r in prow], dtype=np.float32)
    flat = {
        "particle_type": np.array([r[2] for r in prow], np.int32),
        "process": np.zeros(len(prow), np.uint32),
        "vx": np.zeros(len(prow), np.float32),
        "vy": np.zeros(len(prow), np.float32),
        "vz": np.zeros(len(prow), np.float32),
        "vt": np.zeros(len(prow), np.float32),
        "px": pp[:, 0],
        "py": pp[:, 1],
        "pz": pp[:, 2],
        "m": np.array([r[5] for r in prow], np.float32),
        "q": np.array([r[3] for r in prow], np.float32),
    }
    if schema == "v43":
        flat["particle_id"] = packed(*pc.T)
    else:
        flat["particle_hash"] = packed(*pc.T)
    for j, name in enumerate(BARCODE):
        flat[name] = pc[:, j].astype(np.uint32)
    with uproot.recreate(f"{directory}/particles.root") as f:
        if particles_layout == "per_particle":
            f.mktree("particles", {"event_id": np.uint32, **{k: v.dtype for k, v in flat.items()}})
            f["particles"].extend({"event_id": pev, **flat})
        else:
            uniq, counts = np.unique(pev, return_counts=True)
            # particle rows are grouped by event in creation order
            jag = {k: ak.unflatten(v, counts) for k, v in flat.items()}
            f.mktree("particles", {"event_id": np.uint32, **{k: v.type for k, v in jag.items()}})
            f["particles"].extend({"event_id": uniq.astype(np.uint32), **jag})
