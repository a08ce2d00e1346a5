"""benchmarks/event_size.py: one measurement cell on a tiny data set, and the table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import event_size

from hepx.data import convert
from hepx.sim import simulate_actstrack


def test_measure_counts_hits_per_step_and_reports_both_loops(tmp_path):
    raw = tmp_path / "raw"
    simulate_actstrack(raw, events=6, seed=1, pileup=1)
    data = tmp_path / "data"
    convert("actstrack", [raw], data, reader_options={"tracks_per_event": None})
    r = event_size.measure(data, budget=1, steps=2, tuned=False)
    assert r["allocator"] == "glibc default" and r["batching"] == "1 hits"
    # a budget below one event: every step is one event (the larger ones alone)
    assert r["hits_per_step"] == r["hits_per_event"] > 0
    for loop in ("train", "score"):
        assert r[f"{loop}_hits_per_s"] > 0 and 0 <= r[f"{loop}_sys_share"] <= 1
        assert r[f"{loop}_faults_per_step"] >= 0 and r[f"{loop}_peak_mb"] >= 0
    # the baseline: a fixed number of events per batch, whatever their hits
    r = event_size.measure(data, budget=1, steps=2, tuned=False, batch_events=2, max_hits=10**9)
    assert r["batching"] == "2 events"
    assert r["hits_per_step"] == pytest.approx(2 * r["hits_per_event"])
    r = event_size.measure(data, budget=1, steps=2, tuned=False, batch_events=2, max_hits=1)
    assert r["skipped"].startswith("not run: ") and "hits_per_s" not in str(r)


@pytest.mark.skipif(not event_size._reset_peak(), reason="needs Linux's clear_refs peak reset")
def test_peak_memory_counts_what_a_loop_touches_and_resets():
    before = event_size._rss_bytes()
    a = np.ones(50 * 2**20 // 8)  # 50 MiB, touched
    del a
    assert event_size._peak_bytes() - before >= 45 * 2**20
    assert event_size._reset_peak()
    assert event_size._peak_bytes() - event_size._rss_bytes() < 10 * 2**20


def test_table_gives_the_spread_over_event_sizes_per_batching_and_allocator():
    def row(size, alloc, train, score, peak, batching="50 hits"):
        return {
            "size": size, "batching": batching, "allocator": alloc, "hits_per_event": 100.0,
            "hits_per_step": 5e4, "train_hits_per_s": train, "train_sys_share": 0.1,
            "train_faults_per_step": 10.0, "train_peak_mb": peak, "score_hits_per_s": score,
            "score_sys_share": 0.0, "score_faults_per_step": 0.0, "score_peak_mb": peak / 2,
            "peak_reset": True,
        }  # fmt: skip

    rows = [
        row("a", "x", 100.0, 300.0, 400.0),
        row("b", "x", 130.0, 200.0, 500.0),
        row("a", "y", 90.0, 90.0, 100.0),
        row("a", "x", 80.0, 80.0, 900.0, batching="4 events"),
        {"size": "b", "batching": "4 events", "skipped": "not run: 9 hits per batch"},
    ]
    text = event_size._table(rows)
    assert "50 hits, x, train: fastest / slowest size = 1.30; peak MB 400 to 500 over 2" in text
    assert "50 hits, x, score: fastest / slowest size = 1.50; peak MB 200 to 250" in text
    assert "50 hits, y, train: fastest / slowest size = 1.00" in text
    assert "4 events, x, train: fastest / slowest size = 1.00; peak MB 900 to 900 over 1" in text
    assert "| b | 4 events | not run: 9 hits per batch |" in text
    assert text.count("\n| ") == 5  # one line per row
    widths = {line.count("|") for line in text.splitlines() if line.startswith("|")}
    assert widths == {13}  # every row has the header's 12 columns
