"""Full ActsTrack events at HL-LHC pileup through the whole chain: simulate (mu = 200),
convert every hit, train, score, post-process and plot; every hit of the input gets a score."""

import json

import awkward as ak
import numpy as np
import pytest
import uproot

import hepx
import hepx.io
import hepx.scoring
import hepx.scoring.files
from hepx.cli import main
from hepx.post import read_root
from hepx.scoring import load_scored
from hepx.sim import simulate_actstrack

pytestmark = pytest.mark.slow


def test_full_events_at_pileup_200_every_input_hit_is_scored(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    simulate_actstrack(raw, events=12, seed=3, pileup=200, chunk_size=6)
    n_hits = uproot.open(raw / "hits.root")["hits"].num_entries
    assert n_hits > 12 * 5000  # thousands of pileup hits per event, not 10 tracks
    data = tmp_path / "data"
    assert main(["-q", "convert", "actstrack", str(raw), "--out", str(data),
                 "--config", "convert/actstrack_full"]) == 0  # fmt: skip
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["num_points"] == n_hits and manifest["num_samples"] == 12

    run = tmp_path / "run"
    small = ["train.epochs=1", "model.hidden_channels=8", "model.num_layers=2",
             "train.max_points_per_batch=30000", "train.eval_max_points_per_batch=30000",
             f"dataset.path={data}"]  # fmt: skip
    argv = ["-q", "train", "actstrack_full/lri_bernoulli_egnn", "--out", str(run), "--no-progress"]
    assert main(argv + [a for item in small for a in ("--set", item)]) == 0

    scored = tmp_path / "scored"
    budgets = []  # the scorer takes the run's evaluation budget by default
    scorer = hepx.scoring.files.EventScorer
    monkeypatch.setattr(
        hepx.scoring.files,
        "EventScorer",
        lambda *a, **kw: budgets.append(kw["max_points"]) or scorer(*a, **kw),
    )
    assert main(["-q", "score", str(run), str(raw), "--out", str(scored), "--no-progress"]) == 0
    assert budgets == [30000]
    monkeypatch.setattr(hepx.scoring, "EventScorer", hepx.scoring.files.EventScorer)
    first = hepx.io.read_acts(raw / "hits.root", raw / "particles.root", tracks_per_event=None)[:2]
    hepx.load(run).predict(first)  # the Python API takes the run's budget as well
    assert budgets == [30000, 30000]
    (output,) = json.loads((scored / "manifest.json").read_text())["outputs"]
    assert output["hits_scored"] == output["hits_in_file"] == n_hits
    trees = read_root(scored / output["root"])
    importance = ak.to_numpy(trees["hits_importance"].importance)
    # the friend tree: one entry per input hit, in the input's order, none left unscored
    assert len(importance) == n_hits and np.isfinite(importance).all()
    np.testing.assert_array_equal(
        ak.to_numpy(trees["hits_importance"].hit_index), np.arange(n_hits)
    )
    assert ((importance >= 0) & (importance <= 1)).all()  # LRI-Bernoulli keep probabilities
    _, events = load_scored(scored)
    assert len(events) == 12 and ak.all(ak.num(events.hits) > 5000)
    # hits that belong to no track are scored too; tracks get their importance
    assert ak.any(events.hits.track < 0)
    assert np.isfinite(ak.to_numpy(ak.flatten(events.tracks.importance))).all()

    plots = tmp_path / "plots"
    assert main(["-q", "plot", str(scored), "--out", str(plots), "--format", "png"]) == 0
    names = {p.name for p in plots.iterdir()}
    assert {"display-xy.png", "display-rz.png", "importance.png", "track-roc.png"} <= names
