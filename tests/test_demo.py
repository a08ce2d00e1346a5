"""``hepx demo --quick``: the README's main job end to end on a few events (the full demo
differs only in sizes)."""

import json

import pytest
import uproot

from hepx.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for kind, k in (("actstrack", 12), ("tau3mu", 3)):
        metrics = summary[kind]
        assert metrics["n_test"] > 0 and 0.0 <= metrics["test_pred_auc"] <= 1.0
        assert 0.0 <= metrics["test_interp_auc"] <= 1.0 and f"test_prec@{k}" in metrics
        assert (out / "runs" / f"{kind}_lri_bernoulli_dgcnn" / "checkpoints" / "best.pt").exists()
        assert {p.suffix for p in (out / "plots" / kind).iterdir()} == {".png", ".pdf"}
    # every simulated ActsTrack event is scored and written back, keyed by event
    with uproot.open(out / "explain" / "actstrack" / "actstrack_2T.importance.root") as f:
        assert f["events"].num_entries == 120 and f["hits_importance"].num_entries > 120 * 100
    assert not list(out.rglob("*.tmp*"))  # nothing half-written
