"""``hepx evaluate`` on the session's tiny trained runs: report files, bad input -> exit
code 2."""

import csv

import pytest
import yaml

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
    # BernMask-P is fit with the run's training batch size (the reference's), not --batch-size
    train_batch = yaml.safe_load(open(runs["plain"] / "config.yaml"))["train"]["batch_size"]
    assert int(rows[1]["fit_batch_size"]) == train_batch != 64
    assert rows[0]["fit_batch_size"] == ""  # gradgeo is not fit
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


def _train_variant(tmp_path_factory, dataset, name: str, section: str, **changes):
    """A tiny plain ActsTrack run like the session's, with ``changes`` in ``section``."""
    from tiny_runs import tiny_config

    from hepx.training import train

    cfg = tiny_config(dataset, "actstrack", "plain")
    cfg[section] = {**cfg.get(section, {}), **changes}
    run = tmp_path_factory.mktemp(name) / name
    train(cfg, run, progress=False)
    return run


@pytest.fixture(scope="module")
def plain_seed1_run(acts_dataset, tmp_path_factory):
    """A second plain run of the session's ActsTrack data and split, trained with seed 1."""
    return _train_variant(tmp_path_factory, acts_dataset, "acts_plain_seed1", "train", seed=1)


def _ensemble_expectations(run_dirs):
    """Independently: the ROC AUC of the two runs' mean logit, and the pooled interpretation
    AUC (points of the positive test samples) of the mean of their GradGeo scores ranked
    within each sample in [0, 1] (scipy's average ranks)."""
    import numpy as np
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score
    from torch_geometric.loader import DataLoader

    from hepx.explain import get_explainer
    from hepx.run import TrainedRun

    logits, ranks = [], []
    for d in run_dirs:  # (the runs share the test split: the labels are the same each time)
        run = TrainedRun.open(d)
        model, test = run.model(), run.splits()["test"]
        lg, rk, y, lab, positive = [], [], [], [], []
        for b in DataLoader(test, batch_size=64):
            lg.append(model(b).detach().view(-1).numpy())
            s = get_explainer("gradgeo")(model, b).scores.numpy()
            for i in range(b.num_graphs):
                si = s[(b.batch == i).numpy()]
                rk.append((rankdata(si) - 1) / (len(si) - 1) if len(si) > 1 else [0.5])
                lab.append(b.node_label[b.batch == i].numpy())
                positive.append(np.full(len(si), float(b.y.view(-1)[i]) > 0.5))
            y.append(b.y.view(-1).numpy())
        logits.append(np.concatenate(lg))
        ranks.append(np.concatenate(rk))
    keep = np.concatenate(positive)
    # (rounded: equal rationals from different samples must tie, as in float32)
    score, lab = np.round((ranks[0] + ranks[1]) / 2, 9), np.concatenate(lab)
    pred_auc = roc_auc_score(np.concatenate(y), (logits[0] + logits[1]) / 2)
    return pred_auc, roc_auc_score(lab[keep], score[keep])


def test_ensemble_rows(runs, plain_seed1_run, tmp_path):
    """``--ensemble 2`` on two plain runs of the same data and split adds one
    ``<method>+ens2`` row per post-hoc method, scored like the others."""
    rep = tmp_path / "report"
    argv = ["-q", "evaluate", str(plain_seed1_run), str(runs["plain"]), str(runs["lri_bernoulli"])]
    argv += ["--methods", "gradgeo,bernmask_p", "lri_bernoulli", "--ensemble", "2"]
    argv += ["--out", str(rep), "--draws", "2", "--robustness-samples", "3", "--fit-epochs", "1"]
    assert _main(argv) == 0
    rows = list(csv.DictReader(open(rep / "results.csv")))
    assert [r["method"] for r in rows] == [
        "gradgeo",
        "bernmask_p",
        "gradgeo",
        "bernmask_p",
        "lri_bernoulli",
        "gradgeo+ens2",
        "bernmask_p+ens2",
    ]
    ens = {r["method"]: r for r in rows[-2:]}
    members = sorted([runs["plain"], plain_seed1_run], key=lambda p: p.name)
    assert ens["gradgeo+ens2"]["run"] == "+".join(p.name for p in members)
    pred_auc, interp_auc = _ensemble_expectations(members)
    assert float(ens["gradgeo+ens2"]["pred_auc"]) == pytest.approx(pred_auc, abs=1e-6)
    assert float(ens["bernmask_p+ens2"]["pred_auc"]) == pytest.approx(pred_auc, abs=1e-6)
    assert float(ens["gradgeo+ens2"]["interp_auc"]) == pytest.approx(interp_auc, abs=1e-6)
    for r in ens.values():
        assert "members=2" in r["options"] and "normalise=rank" in r["options"]
        for col in ("interp_auc_per_sample", "prec@4", "prec@8", "fid_plus", "fid_minus"):
            assert r[col] != "", col
        assert r["equiv_permutation_cos"] != ""  # robustness of the ensemble explanation
        assert r["sanity_random_spearman"] == ""  # sanity checks skipped for ensembles
        assert r["dataset"] == "actstrack" and r["backbone"] == "egnn"
    assert "| gradgeo+ens2 | egnn | actstrack |" in (rep / "results.md").read_text()


def test_ensemble_needs_runs_of_one_test_split(
    runs, plain_seed1_run, acts_dataset, tmp_path_factory, tmp_path, capsys
):
    other = _train_variant(tmp_path_factory, acts_dataset, "acts_split1", "dataset", split_seed=1)
    out = tmp_path / "r"
    argv = ["evaluate", str(runs["plain"]), str(other), "--ensemble", "2", "--out", str(out)]
    assert _main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not evaluated on the same test data" in err
    assert str(runs["plain"]) in err and str(other) in err
    assert not out.exists()
    argv = ["evaluate", str(runs["plain"]), str(plain_seed1_run), "--ensemble", "3"]
    assert _main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "only 2 plain actstrack/egnn run(s)" in err
    assert (
        _main(["evaluate", str(runs["lri_bernoulli"]), "--ensemble", "2", "--out", str(out)]) == 2
    )
    assert "made of plain runs" in capsys.readouterr().err
    assert not out.exists()


def test_fit_batch_size_rule():
    from hepx.evaluation.table import fit_batch_size

    run_config = {"train": {"batch_size": 256}}  # Tau3Mu's training batch, the reference's
    opt = {"batch_size": 64, "fit_batch_size": None}
    assert fit_batch_size("bernmask_p", run_config, opt) == 256
    assert fit_batch_size("pgexplainer", run_config, opt) == 64
    assert fit_batch_size("pointmask_posthoc", run_config, opt) == 64
    forced = {**opt, "fit_batch_size": 32}
    assert fit_batch_size("bernmask_p", run_config, forced) == 32
    assert fit_batch_size("pgexplainer", run_config, forced) == 32
