"""``hepx evaluate`` on tiny trained runs: report files, bad input -> exit code 2."""

import csv

import acts_files as af
import pytest

import hepx.cli
from hepx.data import convert
from hepx.training import train


def _main(argv):
    return hepx.cli.main(argv)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    (d / "raw").mkdir()
    af.write_acts(d / "raw", af.build_events(36))
    convert("actstrack", [d / "raw"], d / "ds")
    out = {}
    for method in ("plain", "lri_bernoulli"):
        cfg = {
            "dataset": {"path": str(d / "ds"), "kind": "actstrack"},
            "model": {
                "backbone": "egnn",
                "method": method,
                "pos_scale": 0.001,
                "hidden_channels": 8,
                "num_layers": 2,
            },
            "train": {"epochs": 1, "batch_size": 8, "seed": 0},
            "eval": {"precision_k": [4, 8]},
        }
        train(cfg, d / method, progress=False)
        out[method] = d / method
    return out


def test_evaluate_writes_table_and_roc(runs, tmp_path):
    rep = tmp_path / "report"
    code = _main(
        [
            "-q",
            "evaluate",
            str(runs["plain"]),
            str(runs["lri_bernoulli"]),
            "--methods",
            "gradgeo,ig,bernmask_p",
            "lri_bernoulli",
            "--out",
            str(rep),
            "--draws",
            "2",
            "--robustness-samples",
            "3",
            "--fit-epochs",
            "1",
            "--ig-steps",
            "4",
            "--ig-baseline",
            "centroid",
        ]
    )
    assert code == 0
    assert {p.name for p in rep.iterdir()} >= {
        "results.md",
        "results.csv",
        "results.json",
        "roc_actstrack_egnn.png",
    }
    rows = list(csv.DictReader(open(rep / "results.csv")))
    assert [r["method"] for r in rows] == ["gradgeo", "bernmask_p", "ig", "lri_bernoulli"]
    for col in (
        "pred_auc",
        "interp_auc",
        "prec@4",
        "fid_plus",
        "equiv_permutation_cos",
        "inv_rotation_z_spearman",
        "inv_e3_cos",
        "model_inv_rotation_z_cos",
        "sanity_random_spearman",
        "sanity_perturb_spearman",
        "explain_ms_per_sample",
    ):
        assert col in rows[0], col
    assert float(rows[0]["equiv_permutation_cos"]) > 0.999
    ig_options = dict(o.split("=") for o in rows[2]["options"].split(";"))
    assert ig_options["baseline"] == "centroid" and ig_options["n_steps"] == "4"
    assert "| gradgeo | egnn | actstrack |" in (rep / "results.md").read_text()


def test_bad_input_exit_2(runs, tmp_path, capsys):
    code = _main(
        ["evaluate", str(runs["plain"]), "--methods", "shap", "--out", str(tmp_path / "r")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown method 'shap'" in err and "gradcam" in err and err.count("\n") == 1
    empty = tmp_path / "norun"
    empty.mkdir()
    assert _main(["evaluate", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "checkpoints/best.pt missing" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert (
        _main(
            [
                "evaluate",
                str(runs["plain"]),
                "--methods",
                "lri_gaussian",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "applies to these runs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_run_from_another_dataset_is_refused(runs, tmp_path, capsys):
    from hepx import sim

    sim.simulate_tau3mu(tmp_path / "tau", events=60, seed=0)
    convert("tau3mu", [tmp_path / "tau" / "ntuple.root"], tmp_path / "tauds")
    code = _main(
        [
            "evaluate",
            str(runs["plain"]),
            "--data",
            str(tmp_path / "tauds"),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "'actstrack' dataset" in capsys.readouterr().err
