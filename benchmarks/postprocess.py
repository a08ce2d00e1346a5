"""Benchmark of hepx.post: numba kernels vs the pure awkward/NumPy reference, same data, same run.

Usage::

    python benchmarks/postprocess.py [--hits 10_000_000] [--hits-per-event 110] [--repeat 3]

Synthetic ActsTrack-like events (about ``--hits-per-event`` hits in 10 tracks per event, hits of
a track not contiguous). Reductions:

* ``track_reduce``: per-track count, mean and max of the hit importance (the headline number);
* ``topk_track_fraction``: per-track fraction of hits in the event's top-24 (per-event sort);
* ``group_stats``: per-layer count/mean/std/max;
* ``main_axis_angle``: LRI-Gaussian 3x3 main axis vs direction (on ``--axis-hits`` hits).

Numba runs single-threaded (the kernels are serial; ``NUMBA_NUM_THREADS=1`` is set) and is
compiled (or loaded from the cache) in a warm-up call that is not timed. Each figure is the best
of ``--repeat`` runs (the reference of the jagged reductions runs once when it is slow).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

from hepx.post import kernels, reference


def make_data(n_hits: int, hits_per_event: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_events = max(n_hits // hits_per_event, 1)
    counts = rng.poisson(hits_per_event, n_events).astype(np.int64)
    counts[-1] += max(n_hits - int(counts.sum()), 0)
    hit_off = np.zeros(n_events + 1, np.int64)
    np.cumsum(counts, out=hit_off[1:])
    n = int(hit_off[-1])
    trk_off = np.arange(n_events + 1, dtype=np.int64) * 10
    hit_track = rng.integers(0, 10, n).astype(np.int32)
    importance = rng.random(n)
    layer = rng.integers(0, 60, n).astype(np.int64)
    return hit_off, trk_off, hit_track, importance, layer


def best_of(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hits", type=int, default=10_000_000)
    ap.add_argument("--hits-per-event", type=int, default=110)
    ap.add_argument("--axis-hits", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import numba

    numba.set_num_threads(1)
    hit_off, trk_off, hit_track, imp, layer = make_data(args.hits, args.hits_per_event)
    n = len(imp)
    k = np.full(len(hit_off) - 1, 24, np.int64)
    rng = np.random.default_rng(1)
    na = min(args.axis_hits, n)
    u = rng.normal(size=(na, 3, 3))
    sigma = u @ u.transpose(0, 2, 1) + 0.1 * np.eye(3)
    direction = rng.normal(size=(na, 3))

    cases = [
        ("track_reduce", n, (hit_off, trk_off, hit_track, imp), 1),
        ("topk_track_fraction", n, (hit_off, trk_off, hit_track, imp, k), 1),
        ("group_stats", n, (layer, imp, 60), args.repeat),
        ("main_axis_angle", na, (sigma, direction), args.repeat),
    ]
    print(
        f"{n:,} hits in {len(hit_off) - 1:,} events, {int(trk_off[-1]):,} tracks; "
        f"numba {numba.__version__}, threads {numba.get_num_threads()}"
    )
    header = f"{'reduction':<22}{'hits':>12}{'numba s':>10}{'numba hits/s':>15}{'ref s':>9}{'ref hits/s':>13}{'speed-up':>10}"
    print(header)
    print("-" * len(header))
    for name, n_items, call_args, ref_repeat in cases:
        kern, ref = getattr(kernels, name), getattr(reference, name)
        out_k = kern(*call_args)  # warm-up: compile or load the cache (not timed)
        t_k = best_of(lambda kern=kern, call_args=call_args: kern(*call_args), args.repeat)
        t0 = time.perf_counter()
        out_r = ref(*call_args)
        t_r = time.perf_counter() - t0
        if ref_repeat > 1:
            t_r = min(
                t_r, best_of(lambda ref=ref, call_args=call_args: ref(*call_args), ref_repeat - 1)
            )
        for a, b in zip(
            out_k if isinstance(out_k, tuple) else (out_k,),
            out_r if isinstance(out_r, tuple) else (out_r,),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
        print(
            f"{name:<22}{n_items:>12,}{t_k:>10.4f}{n_items / t_k / 1e6:>12.1f} M/s"
            f"{t_r:>9.3f}{n_items / t_r / 1e6:>10.1f} M/s{t_r / t_k:>9.1f}x"
        )
    print("(results of numba and reference checked equal; best of runs, compile excluded)")


if __name__ == "__main__":
    main()
