"""``hepx evaluate`` on the session's tiny trained runs: report files, bad input -> exit
code 2."""

import csv

import pytest

import hepx.cli


def _main(argv):
    return hepx.cli.main(argv)


@pytest.fixture
def runs(acts_plain_run, acts_lri_bernoulli_run):
    """The session's ActsTrack EGNN runs, plain and LRI-Bernoulli (precision@4 and @8)."""
    return {"plain": acts_plain_run, "lri_bernoulli": acts_lri_bernoulli_run}


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
        "model_inv_rotation_z_agree",
        "model_inv_rotation_z_absdiff",
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
    assert "no checkpoints/best.pt" in capsys.readouterr().err
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


def test_run_from_another_dataset_is_refused(runs, tau_dataset, tmp_path, capsys):
    code = _main(
        [
            "evaluate",
            str(runs["plain"]),
            "--data",
            str(tau_dataset),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "'actstrack' dataset" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
