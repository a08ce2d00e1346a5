"""``hepx demo --quick``: the README's main job end to end on a few events (the full demo
differs only in sizes), and what a re-run reuses."""

import json
import logging

import pytest
import uproot

from hepx.cli import main
from hepx.demo import SIZES, demo_run_config


@pytest.mark.slow
def test_demo_quick_end_to_end_and_reruns(tmp_path, caplog):
    out = tmp_path / "demo"
    with caplog.at_level(logging.INFO, logger="hepx"):
        assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quick"] is True and summary["threads"] == 1
    for kind, k in (("actstrack", 12), ("tau3mu", 3)):
        part = summary[kind]
        metrics = part["test"]
        assert metrics["n_test"] > 0 and 0.0 <= metrics["test_pred_auc"] <= 1.0
        assert 0.0 <= metrics["test_interp_auc"] <= 1.0 and f"test_prec@{k}" in metrics
        assert part["reused"] is False
        assert (out / "runs" / f"{kind}_lri_bernoulli_dgcnn" / "checkpoints" / "best.pt").exists()
        assert {p.suffix for p in (out / "plots" / kind).iterdir()} == {".png", ".pdf"}
        # the plots and the held-out figure are of the held-out sample, not the training one
        assert part["held_out"]["events"] > 0 and 0.0 <= part["held_out"]["interp_auc"] <= 1.0
    held = SIZES["quick"]["actstrack"]["held_out"]
    with uproot.open(out / "scored" / "actstrack" / "actstrack_held_out.importance.root") as f:
        assert f["events"].num_entries == held and f["hits_importance"].num_entries > held * 100
    assert not list(out.rglob("*.tmp*"))  # nothing half-written
    # quick mode does not present its numbers as results; the last line says where things are
    assert "test prediction AUC" not in caplog.text and "numbers mean nothing" in caplog.text
    assert f"plots in {out / 'plots'}, summary in {out / 'summary.json'}" in caplog.text

    # the same settings and data: reused, and said so
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hepx"):
        assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["actstrack"]["reused"] and again["tau3mu"]["reused"]
    assert again["actstrack"]["test"] == summary["actstrack"]["test"]
    assert "reused the trained run" in caplog.text

    # another seed: other data, so never reused
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hepx"):
        assert main(["demo", "--quick", "--out", str(out), "--seed", "5", "--threads", "1"]) == 0
    other = json.loads((out / "summary.json").read_text())
    assert not other["actstrack"]["reused"] and not other["tau3mu"]["reused"]
    assert "fingerprint" in caplog.text and "train.seed" in caplog.text


def test_demo_trains_the_shipped_configs_shortened(tmp_path):
    """The demo's models are the project's own settings (shipped configs), fewer epochs."""
    from hepx.config import find_config, load_yaml

    for kind, name in (
        ("actstrack", "actstrack/lri_bernoulli_dgcnn"),
        ("tau3mu", "tau3mu/lri_bernoulli_dgcnn"),
    ):
        cfg = demo_run_config(kind, tmp_path / kind)
        shipped = load_yaml(find_config(name))
        for key in ("backbone", "method", "aggr", "frame", "graph", "pos_scale"):
            assert cfg["model"].get(key) == shipped["model"].get(key), (kind, key)
        assert cfg["train"]["epochs"] == SIZES["full"][kind]["epochs"]
        assert cfg["train"]["info_loss_coef"] == shipped["train"]["info_loss_coef"]
