"""benchmarks/event_size.py: one measurement cell on a tiny data set, and the table."""

from __future__ import annotations

import sys
from pathlib import Path

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
    assert r["allocator"] == "glibc default"
    # a budget below one event: every step is one event (the larger ones alone)
    assert r["hits_per_step"] == r["hits_per_event"] > 0
    for loop in ("train", "score"):
        assert r[f"{loop}_hits_per_s"] > 0 and 0 <= r[f"{loop}_sys_share"] <= 1
        assert r[f"{loop}_faults_per_step"] >= 0


def test_table_gives_the_spread_over_event_sizes_per_allocator():
    def row(size, alloc, train, score):
        return {
            "size": size, "allocator": alloc, "hits_per_event": 100.0, "hits_per_step": 5e4,
            "train_hits_per_s": train, "train_sys_share": 0.1, "train_faults_per_step": 10.0,
            "score_hits_per_s": score, "score_sys_share": 0.0, "score_faults_per_step": 0.0,
        }  # fmt: skip

    rows = [row("a", "x", 100.0, 300.0), row("b", "x", 130.0, 200.0), row("a", "y", 90.0, 90.0)]
    text = event_size._table(rows)
    assert "x, train: fastest / slowest size = 1.30" in text
    assert "x, score: fastest / slowest size = 1.50" in text
    assert "y, train: fastest / slowest size = 1.00" in text
    assert text.count("\n| ") == 3  # one line per row
