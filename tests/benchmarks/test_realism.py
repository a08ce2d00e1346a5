"""benchmarks/realism.py: the data statistics, the options, the records and the table."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import realism


def test_dataset_stats_from_the_offsets():
    # samples of 3, 0, 2 and 4 points; samples 0 and 3 positive with 2 and 3 important points
    ptr = np.array([0, 3, 3, 5, 9])
    label = np.array([1, 0, 1, 0, 0, 1, 1, 0, 1], dtype=np.int8)
    y = np.array([1, 0, 0, 1], dtype=np.int8)
    got = realism.dataset_stats(ptr, label, y)
    assert got["samples"] == 4 and got["positive"] == 2 and got["negative"] == 2
    assert got["points_mean"] == pytest.approx(2.25)
    assert got["points_sd"] == pytest.approx(np.std([3, 0, 2, 4], ddof=1))
    # the important points of the negative samples do not count
    assert got["important_mean"] == pytest.approx(2.5)
    assert got["important_sd"] == pytest.approx(np.std([2, 3], ddof=1))
    # y of shape [S, 1]; no positive sample: no important-point mean
    none = realism.dataset_stats(ptr, label, np.zeros((4, 1)))
    assert none["positive"] == 0 and math.isnan(none["important_mean"])


def test_per_dataset_options():
    kinds = ["actstrack", "tau3mu"]
    default = {"actstrack": 3000, "tau3mu": 20000}
    assert realism.per_dataset(None, kinds, default, int) == default
    assert realism.per_dataset(["50"], kinds, default, int) == {"actstrack": 50, "tau3mu": 50}
    got = realism.per_dataset(["tau3mu=7"], kinds, default, int)
    assert got == {"actstrack": 3000, "tau3mu": 7}
    assert realism.per_dataset(["tau3mu=7"], ["actstrack"], default, int) == {"actstrack": 3000}
    assert realism.per_dataset(None, kinds, {}, float) == {"actstrack": None, "tau3mu": None}
    with pytest.raises(ValueError, match="one value for every data set"):
        realism.per_dataset(["5", "tau3mu=7"], kinds, default, int)
    with pytest.raises(ValueError, match="unknown data set 'synmol'"):
        realism.per_dataset(["synmol=5"], kinds, default, int)
    with pytest.raises(ValueError, match="is not a int"):
        realism.per_dataset(["x"], kinds, default, int)


def test_both_generators_get_the_command_line_defaults():
    assert realism.cli_defaults("actstrack")["pileup"] == 5.0
    tau = realism.cli_defaults("tau3mu")
    assert tau["pileup"] == 200.0 and tau["signal_fraction"] == 0.24


def test_records_resume(tmp_path):
    rec = realism.Records(tmp_path / "records.json")
    key = realism.eval_key("t", {"plain": 2, "lri_bernoulli": 3}, 1, ["a=1"])
    assert key == "t|plain:e2,lri_bernoulli:e3|s1|a=1"
    rec.put("eval", key, {"plain_pred_auc": float("nan")})
    again = realism.Records(tmp_path / "records.json")  # a restarted run finds the step done
    assert again.get("eval", key) == {"plain_pred_auc": None}
    assert again.get("data", "t") is None


def _entry(values: dict[str, list[float]], stats=None):
    from paper_table import t_interval

    metrics = {m: t_interval(values.get(m, [])) for m in realism.METRICS}
    return {"data": stats, "metrics": metrics}


def test_table_cells_and_reference_column():
    stats = {"events": 300, "samples": 288, "points_mean": 16.114, "points_sd": 6.54}
    stats |= {"important_mean": 6.12, "important_sd": 1.0, "positive": 59, "negative": 229}
    stats |= {"sim_minutes": None}
    results = {
        "tau3mu": {
            "fast": _entry({"plain_pred_auc": [0.7, 0.8, 0.9], "lri_interp_auc": [0.9]}, stats),
        }
    }
    lines = realism.table_lines(results, ["fast", "pythia8"])
    assert lines[0] == "| data set | quantity | fast | pythia8 | paper / literature (real data) |"
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert len(rows) == len(realism.ROWS)
    assert rows["points per sample (mean, sd)"] == (
        "| Tau3Mu | points per sample (mean, sd) | 16.11 (sd 6.5) | pending | 16.9 |"
    )
    assert rows["positive : negative (%)"].endswith("| 20.5:79.5 (59:229) | pending | 24:76 |")
    assert rows["plain EGNN prediction ROC AUC"].endswith(
        "| 0.800 [0.552, 1.048] (3 seeds) | pending | 0.828 |"
    )
    # the literature's interpretation ROC AUC, from paper_table.LITERATURE (percent)
    assert rows["LRI-Bernoulli EGNN interpretation ROC AUC"].endswith(
        "| 0.900 (1 seed) | pending | 0.7823 |"
    )
    assert rows["GradCAM interpretation ROC AUC (plain EGNN)"].endswith(
        "| pending | pending | 0.7618 |"
    )
    assert rows["LRI-Bernoulli EGNN prediction ROC AUC"].endswith("| — |")
    assert rows["simulation minutes"].endswith("| n/a | pending | — |")
    acts = realism.reference("actstrack")
    assert acts["points"] == 109.1 and acts["ratio"] == (39, 61)
    assert acts["plain_pred_auc"] == 0.974 and acts["gradcam_interp_auc"] == pytest.approx(0.7519)


def test_metrics_of_evaluation_rows():
    rows = [
        {"method": "gradcam", "pred_auc": 0.9, "interp_auc": 0.7, "prec@12": 0.5, "prec@24": 0.4},
        {"method": "lri_bernoulli", "pred_auc": 0.8, "interp_auc": 0.95, "prec@12": 0.6},
    ]
    got = realism.metrics_of(rows)
    assert got["plain_pred_auc"] == 0.9 and got["gradcam_interp_auc"] == 0.7
    assert got["lri_pred_auc"] == 0.8 and got["lri_interp_auc"] == 0.95
    assert got["gradcam_prec@k1"] == 0.5 and got["lri_prec@k1"] == 0.6


def test_collect_reads_the_current_settings_records(tmp_path):
    settings = {
        "datasets": {
            "tau3mu": {"events": 300, "pileup": 200.0, "epochs": {"plain": 2, "lri_bernoulli": 2}}
        },
        "generators": ["fast", "pythia8"],
        "seed": 1,
        "seeds": [0, 1],
        "overrides": [],
    }
    rec = realism.Records(tmp_path / "records.json")
    tag = realism.data_tag("tau3mu", "fast", 300, 1, 200.0)
    assert tag == "tau3mu_fast_n300_s1_pu200"
    rec.put("data", tag, {"samples": 288})
    for seed, auc in ((0, 0.8), (1, float("nan")), (2, 0.1)):  # seed 2: not asked for
        metrics = dict.fromkeys(realism.METRICS, auc)
        rec.put("eval", realism.eval_key(tag, {"plain": 2, "lri_bernoulli": 2}, seed, []), metrics)
    got = realism.collect(realism.Records(tmp_path / "records.json"), settings)["tau3mu"]
    assert got["fast"]["data"] == {"samples": 288} and sorted(got["fast"]["seeds"]) == [0, 1]
    # the seed whose metric was NaN (stored as null) does not count
    assert got["fast"]["metrics"]["plain_pred_auc"] == {
        "mean": 0.8,
        "lo": pytest.approx(math.nan, nan_ok=True),
        "hi": pytest.approx(math.nan, nan_ok=True),
        "n": 1,
    }
    assert got["pythia8"]["data"] is None and got["pythia8"]["metrics"]["lri_pred_auc"]["n"] == 0
