"""The benchmark scripts' shared run settings (benchmarks/_common.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hepx.models.lri import r_schedule

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import records
from _common import BENCH_EPOCHS, CONFIGS, bench_epochs, shortened_config, training_minutes

from hepx.config import apply_overrides, load_yaml, shipped_config_dir

#: The shipped run configs (package data of hepx).
SHIPPED = shipped_config_dir()


@pytest.mark.parametrize(
    ("kind", "method", "epochs", "warmup", "interval"),
    [
        ("tau3mu", "lri_bernoulli", 20, 0, 8),  # egnn: 100 epochs, no warm-up
        ("actstrack", "lri_bernoulli", 25, 0, 10),  # the reference interval already fits
        ("actstrack", "lri_gaussian", 25, 12, None),  # 200 of 300 warm-up, capped at half; no r
        ("actstrack", "lri_gaussian", 3, 1, None),
        ("tau3mu", "lri_bernoulli", 4, 0, 1),
    ],
)
def test_shortened_config(tmp_path, kind, method, epochs, warmup, interval):
    cfg = shortened_config(kind, method, "egnn", epochs=epochs, seed=3, data=tmp_path)
    assert cfg["train"]["epochs"] == epochs and cfg["train"]["warmup"] == warmup
    assert cfg["train"]["seed"] == 3 and cfg["dataset"]["path"] == str(tmp_path)
    if interval is None:  # only LRI-Bernoulli has an r schedule: left as configured
        assert cfg["model"]["bernoulli"]["decay_interval"] == 10
        return
    bern = cfg["model"]["bernoulli"]
    assert bern["decay_interval"] == interval
    sched = {k: bern.get(k, d) for k, d in (("init_r", 0.9), ("decay_r", 0.1), ("final_r", 0.5))}
    # final r is reached by 80 % of the run (0.9 -> 0.7 in two decays for these configs)
    assert r_schedule(int(0.8 * epochs), decay_interval=interval, **sched) == bern["final_r"]


def test_shortened_config_keeps_the_lr_decay_at_its_fraction(tmp_path, monkeypatch):
    import _common

    (tmp_path / "actstrack").mkdir()
    (tmp_path / "actstrack" / "plain_egnn.yaml").write_text(
        "model: {backbone: egnn}\n"
        "train: {epochs: 300, lr_schedule: cosine, lr_decay_start: 180}\n"
        "dataset: {}\n"
    )
    monkeypatch.setattr(_common, "CONFIGS", tmp_path)
    for epochs, start in ((100, 60), (25, 15), (300, 180)):
        cfg = shortened_config("actstrack", "plain", "egnn", epochs=epochs, seed=1, data=tmp_path)
        assert cfg["train"]["lr_decay_start"] == start
    # a config without the key is left without it (the default: no decay)
    monkeypatch.setattr(_common, "CONFIGS", CONFIGS)
    cfg = shortened_config("actstrack", "plain", "egnn", epochs=25, seed=1, data=tmp_path)
    assert "lr_decay_start" not in cfg["train"]


@pytest.mark.parametrize("kind", sorted(BENCH_EPOCHS))
def test_bench_epochs_never_exceed_the_reference_schedule(kind):
    """Benchmark runs are the reference schedule or a shortened one, never a stretched one,
    for every method and backbone with a config; ``--epochs-*`` overrides the table."""
    for method, epochs in BENCH_EPOCHS[kind].items():
        for backbone in ("egnn", "dgcnn", "point_transformer"):
            path = SHIPPED / kind / f"{method}_{backbone}.yaml"
            if not path.exists():  # GMT: EGNN only
                assert method.startswith("gmt"), path
                continue
            ref = load_yaml(path)["train"]["epochs"]
            assert 0 < bench_epochs(kind, method) == epochs <= ref
        assert bench_epochs(kind, method, 7) == 7
    with pytest.raises(ValueError, match=r"no benchmark schedule for tau3mu:lri_dirichlet"):
        bench_epochs("tau3mu", "lri_dirichlet")


def test_training_minutes_sums_the_epoch_seconds(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,seconds,val_pred_auc\n0,30.0,0.5\n1,90.0,0.6\n")
    assert training_minutes(tmp_path) == 2.0


def test_paper_table_reevaluation_wins(tmp_path):
    """A ``--methods`` re-evaluation (report ``<ds>_<bb>_s<seed>-<tag>``) replaces the base
    report's rows of the same methods and keeps the others."""
    import json
    import os

    from paper_table import _collect

    def report(name, rows, mtime):
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps(rows))
        os.utime(d / "results.json", (mtime, mtime))

    row = {"dataset": "actstrack", "backbone": "egnn", "prec@12": 0.5}
    report("actstrack_egnn_s1-score", [{**row, "method": "ig", "interp_auc": 0.97}], 2000)
    report(
        "actstrack_egnn_s1",
        [
            {**row, "method": "ig", "interp_auc": 0.5},
            {**row, "method": "gradcam", "interp_auc": 0.9},
        ],
        1000,
    )
    got = {r["method"]: r for r in _collect(tmp_path)}
    assert got["ig"]["interp_auc"] == 0.97 and got["gradcam"]["interp_auc"] == 0.9
    assert all(r["seed"] == 1 and r["prec@k1"] == 0.5 for r in got.values())
    # a fresh checkout gives the base report a newer time: the re-evaluation still wins, and
    # between two re-evaluations the newer one does
    os.utime(tmp_path / "actstrack_egnn_s1" / "results.json", (3000, 3000))
    assert {r["method"]: r for r in _collect(tmp_path)}["ig"]["interp_auc"] == 0.97
    report("actstrack_egnn_s1-again", [{**row, "method": "ig", "interp_auc": 0.8}], 2500)
    assert {r["method"]: r for r in _collect(tmp_path)}["ig"]["interp_auc"] == 0.8


@pytest.mark.parametrize(("message_dropout", "n_message"), [(0.0, 0), (0.2, 4)])
def test_dropout_locations(message_dropout, n_message):
    from dropout_calibration import dropout_locations

    from hepx.models import build_model

    cfg = {"backbone": "egnn", "method": "lri_bernoulli", "hidden_channels": 8, "num_layers": 2}
    model = build_model({**cfg, "message_dropout": message_dropout}, pos_dim=3, x_dim=0)
    got = {k: len(v) for k, v in dropout_locations(model).items()}
    # EGNN: one in the edge and one in the node MLP of each of the 2 layers; one node-update
    # dropout; head and extractor 2 each
    assert got == {
        "node": 1,
        "head": 2,
        "extractor": 2,
        **({"message": n_message} if n_message else {}),
    }


_DIMS = {"actstrack": {"pos_dim": 3, "x_dim": 0}, "tau3mu": {"pos_dim": 2, "x_dim": 1}}


@pytest.mark.parametrize(
    "path",
    sorted(p for kind in _DIMS for p in (SHIPPED / kind).glob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_shipped_configs_resolve_and_build(path):
    """Every ActsTrack / Tau3Mu config passes the run-config check and builds its model."""
    from hepx.config import resolve_run_config
    from hepx.models.factory import build_model

    kind = path.parent.name
    cfg = resolve_run_config(load_yaml(path))
    period = [None, 6.283185307179586] if kind == "tau3mu" else None
    model = build_model(cfg["model"], period=period, **_DIMS[kind])
    classifier = getattr(model, "classifier", model)  # LRI wraps the classifier
    if cfg["model"]["backbone"] == "dgcnn":  # the aggregation each dataset's DGCNN is run with
        want = "add" if kind == "tau3mu" else "mean"
        assert {conv.aggr for conv in classifier.backbone.convs} == {want}
    if path.name == "lri_bernoulli_egnn.yaml":  # README: ActsTrack's LRI-Bernoulli EGNN
        want = "mean" if kind == "actstrack" else "add"
        assert {conv.aggr for conv in classifier.backbone.convs} == {want}
    if cfg["model"]["method"] == "lri_bernoulli":  # README: only ActsTrack's EGNN samples at 0.5
        sharp = kind == "actstrack" and cfg["model"]["backbone"] == "egnn"
        assert model.temperature == (0.5 if sharp else 1.0)
    # ActsTrack graphs search neighbours by direction (they follow the tracks); (eta, phi) cannot
    assert classifier.graph.space == ("direction" if kind == "actstrack" else "position")


def _fake_run(run: Path, config: dict) -> None:
    from hepx.config import resolve_run_config

    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(resolve_run_config(config), sort_keys=False))
    (run / "test_metrics.json").write_text("{}")


def test_train_run_reuses_only_runs_of_the_current_config(tmp_path):
    """A finished run is reused when its settings are the current config's; a run trained
    under other settings is refused with the differing keys named (not silently reused)."""
    from _common import StaleRunError, train_run

    data = tmp_path / "data"
    cfg = shortened_config("tau3mu", "lri_bernoulli", "egnn", epochs=100, seed=1, data=data)
    run = tmp_path / "runs" / "tau3mu_lri_bernoulli_egnn_s1_e100"
    _fake_run(run, cfg)
    kwargs = dict(epochs=100, seed=1, runs_dir=tmp_path / "runs", data=data)
    assert train_run("tau3mu", "lri_bernoulli", "egnn", **kwargs) == run  # no training happens
    # reporting the live weights next to their average trains and selects the same model
    averaged = tmp_path / "avg" / "tau3mu_lri_bernoulli_egnn_s1_e100"
    _fake_run(averaged, apply_overrides(cfg, ["train.ema_decay=0.995"]))
    live = ["train.ema_decay=0.995", "train.ema_track_live=true"]
    avg_kwargs = {**kwargs, "runs_dir": tmp_path / "avg"}
    assert train_run("tau3mu", "lri_bernoulli", "egnn", overrides=live, **avg_kwargs) == averaged
    # a run trained with fused layers (train.compile) computes the same model: reused
    compiled = ["train.compile=true"]
    assert train_run("tau3mu", "lri_bernoulli", "egnn", overrides=compiled, **kwargs) == run
    with pytest.raises(StaleRunError, match=r"train\.info_loss_coef \(run 0\.1, now 0\.5\)"):
        train_run(
            "tau3mu", "lri_bernoulli", "egnn", overrides=["train.info_loss_coef=0.5"], **kwargs
        )

    old = shortened_config("actstrack", "plain", "dgcnn", epochs=100, seed=2, data=data)
    del old["model"]["graph"]["space"]  # a run from before the key: it ran on positions
    _fake_run(tmp_path / "runs" / "actstrack_plain_dgcnn_s2_e100", old)
    with pytest.raises(StaleRunError, match=r"model\.graph\.space \(run position, now direction\)"):
        train_run(
            "actstrack", "plain", "dgcnn", epochs=100, seed=2, runs_dir=tmp_path / "runs", data=data
        )


RECORDS = sorted(records.load("runs").items())  # benchmarks/results/runs.json


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=[name for name, _ in RECORDS])
def test_benchmark_records_match_the_shipped_configs(name, record, tmp_path):
    """The README's quality figures come from runs of the configs as shipped."""
    from _common import check_run_config

    assert record["name"] == name
    kind, *_, backbone, seed, epochs = name.split("_")
    method = name[len(kind) + 1 : -len(f"_{backbone}_{seed}_{epochs}")]
    cfg = shortened_config(
        kind, method, backbone, epochs=int(epochs[1:]), seed=int(seed[1:]), data=Path("any")
    )
    # the record keeps the run's config without the dataset path: a run directory again
    run = tmp_path / name
    run.mkdir()
    config = {**record["config"], "dataset": {**record["config"]["dataset"], "path": "any"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    check_run_config(run, cfg)


def test_stale_run_ends_a_benchmark_with_one_line_and_exit_2(capsys):
    from _common import StaleRunError, run_script

    def main():
        raise StaleRunError("runs/x was trained with other settings: train.seed (run 1, now 2)")

    with pytest.raises(SystemExit) as exit_info:
        run_script(main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: runs/x was trained with other settings: train.seed (run 1, now 2)\n"


# --- benchmarks/paper_table.py: intervals, pending cells, claims, literature, mask pool ------


def _pt_rows(values: dict[str, list[float]], ds="tau3mu", bb="egnn", metric="interp_auc"):
    """Report rows (as :func:`paper_table._collect` returns them) of ``{method: per seed}``."""
    return [
        {"dataset": ds, "backbone": bb, "method": m, "seed": s, metric: v, "prec@k1": v}
        for m, vs in values.items()
        for s, v in enumerate(vs)
    ]


def test_paper_table_t_interval_by_hand():
    from paper_table import t_interval

    # mean 0.8, sd (ddof 1) 0.1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.302653 * 0.057735
    got = t_interval([0.7, 0.8, 0.9, float("nan")])  # NaN values do not count
    assert got["n"] == 3 and got["mean"] == pytest.approx(0.8)
    assert got["lo"] == pytest.approx(0.8 - 0.248414, abs=1e-6)
    assert got["hi"] == pytest.approx(0.8 + 0.248414, abs=1e-6)
    one = t_interval([0.5])  # no interval from one value
    assert one["mean"] == 0.5 and one["n"] == 1 and np.isnan(one["lo"]) and np.isnan(one["hi"])
    assert t_interval([])["n"] == 0


def test_paper_table_never_fills_a_cell_from_fewer_seeds():
    from paper_table import cell, cell_text, table_rows

    two = cell([0.7, 0.8], 3)
    assert two["pending"] and two["n"] == 2 and np.isnan(two["mean"])
    assert cell_text(two, 3) == "pending (2 of 3 seeds)"
    assert cell_text(cell([0.7, 0.8, 0.9], 3), 3) == "0.800 [0.552, 1.048]"
    assert cell_text(cell([0.7], 1), 1) == "0.700 (1 seed)"  # --smoke: one seed, no interval
    rows = _pt_rows({"gradcam": [0.7, 0.8, 0.9], "ig": [0.6, 0.7]})
    got = {t["method"]: t for t in table_rows(rows, 3)}
    assert got["gradcam"]["seeds"] == 3 and not got["gradcam"]["metrics"]["interp_auc"]["pending"]
    assert got["ig"]["seeds"] == 2 and got["ig"]["metrics"]["interp_auc"]["pending"]
    # expected methods without rows are listed, pending from no seed
    assert got["ggig"]["seeds"] == 0 and got["ggig"]["metrics"]["interp_auc"]["pending"]


def test_paper_table_claim_verdicts():
    """Paired per-seed differences lri_bernoulli - method: holds when every interval is above
    0, not shown when one contains 0 (named), does not hold when one lies below 0."""
    from paper_table import _by_seed, above_verdict, paired

    index = _by_seed(
        _pt_rows(
            {
                "lri_bernoulli": [0.90, 0.91, 0.92],
                "gradcam": [0.80, 0.80, 0.80],  # differences 0.10, 0.11, 0.12
                "gradgeo": [0.80, 1.01, 0.87],  # 0.10, -0.10, 0.05
                "ig": [1.00, 1.02, 1.04],  # -0.10, -0.11, -0.12
            }
        )
    )

    def comp(method):
        return paired(index, "tau3mu", "egnn", "lri_bernoulli", method, "interp_auc")

    c = comp("gradcam")  # mean 0.11, sd 0.01: half-width 4.302653 * 0.01 / sqrt(3)
    assert c["n"] == 3 and c["mean"] == pytest.approx(0.11)
    assert c["lo"] == pytest.approx(0.11 - 0.0248414, abs=1e-6)
    assert above_verdict([c], 3) == ("holds", [])
    assert above_verdict([c, comp("gradgeo")], 3) == ("not shown", ["gradgeo"])
    assert above_verdict([c, comp("gradgeo"), comp("ig")], 3) == ("does not hold", ["ig"])
    assert above_verdict([c], 4) == ("pending (3 of 4 seeds)", ["gradcam"])
    # a complete comparison containing 0 is named while others are still pending
    assert above_verdict([c, comp("gradgeo"), comp("bernmask")], 3) == (
        "pending (0 of 3 seeds; interval contains 0: gradgeo)",
        ["bernmask"],
    )
    assert above_verdict([c], 1) == ("holds", [])
    # one seed: no interval, nothing shown
    index = _by_seed(_pt_rows({"lri_bernoulli": [0.9], "ig": [0.8]}))
    one = paired(index, "tau3mu", "egnn", "lri_bernoulli", "ig", "interp_auc")
    assert above_verdict([one], 1) == ("not shown", ["ig"])


def _baselines(value: float, n: int = 3, **kw) -> list[dict]:
    """Rows of every post-hoc method and PointMask of Tau3Mu (``n`` seeds of ``value``)."""
    from hepx.explain.registry import POST_HOC

    return _pt_rows({m: [value] * n for m in (*POST_HOC, "pointmask")}, **kw)


def test_paper_table_claims_per_dataset_and_backbone():
    """The mask-pool variant and GMT are not post-hoc; GMT is pending without runs; the
    mask-pool line reports the paired difference without a verdict beyond holds/not shown."""
    from paper_table import _by_seed, claim_text, claims, is_post_hoc

    from hepx.explain.registry import POST_HOC

    assert is_post_hoc("pointmask") and is_post_hoc("pointmask_posthoc")
    assert not is_post_hoc("lri_bernoulli_maskpool") and not is_post_hoc("gmt_lin")
    rows = _pt_rows(
        {
            "lri_bernoulli": [0.90, 0.91, 0.92],
            "lri_bernoulli_maskpool": [0.95, 0.99, 0.90],  # -0.05, -0.08, 0.02: contains 0
            "lri_gaussian": [0.10, 0.10, 0.10],
        }
    )
    # every baseline is compared, also one without a record: pending, never left out
    recs = {
        (r["claim"], r["metric"]): r
        for r in claims(_by_seed(rows + _pt_rows({"gradcam": [0.8] * 3})), "tau3mu", "egnn", 3)
    }
    post = recs["LRI-Bernoulli above every post-hoc method", "interp_auc"]
    assert {c["method"] for c in post["comparisons"]} == {*POST_HOC, "pointmask"}
    assert post["verdict"] == "pending (0 of 3 seeds)" and "gradcam" not in post["named"]
    assert set(post["named"]) == {*POST_HOC, "pointmask"} - {"gradcam"}
    rows += _baselines(0.80)
    recs = {(r["claim"], r["metric"]): r for r in claims(_by_seed(rows), "tau3mu", "egnn", 3)}
    post = recs["LRI-Bernoulli above every post-hoc method", "interp_auc"]
    assert {c["method"] for c in post["comparisons"]} == {*POST_HOC, "pointmask"}
    assert post["verdict"] == "holds"
    for gmt, name in (("gmt_lin", "GMT-lin"), ("gmt_sam", "GMT-sam")):
        claim = recs[f"{name} above LRI-Bernoulli", "prec@k1"]
        assert claim["verdict"] == f"pending (no {gmt} runs)"
    pool = recs["LRI-Bernoulli (reference) vs mask-weighted pool", "interp_auc"]
    assert pool["verdict"] == "not shown" and pool["comparisons"][0]["mean"] == pytest.approx(
        -0.11 / 3
    )
    line = claim_text(post)
    assert line.startswith("- tau3mu / egnn, interp_auc: LRI-Bernoulli above every post-hoc")
    assert "**holds**" in line and "gradcam +0.110 [+0.085, +0.135] (n=3)" in line
    # a comparison from fewer seeds is withheld like a cell; one seed has no interval
    short = [r for r in rows if r["seed"] < 2]
    recs = {(r["claim"], r["metric"]): r for r in claims(_by_seed(short), "tau3mu", "egnn", 3)}
    pool = recs["LRI-Bernoulli (reference) vs mask-weighted pool", "prec@k1"]
    assert pool["verdict"] == "pending (2 of 3 seeds)" and np.isnan(pool["comparisons"][0]["mean"])
    assert claim_text(pool).endswith("lri_bernoulli_maskpool pending (n=2)")
    one = [r for r in rows if r["seed"] == 0]
    recs = {(r["claim"], r["metric"]): r for r in claims(_by_seed(one), "tau3mu", "egnn", 1)}
    line = claim_text(recs["LRI-Bernoulli above every post-hoc method", "interp_auc"])
    assert "**not shown (no interval from one seed: bernmask, " in line
    assert "gradcam +0.100 (n=1, no interval)" in line
    rows += _pt_rows({"gmt_lin": [0.80, 0.81, 0.82]})  # 0.1 below LRI-Bernoulli every seed
    rows += _pt_rows({"gmt_sam": [0.95, 0.96, 0.97]})  # 0.05 above every seed
    recs = {(r["claim"], r["metric"]): r for r in claims(_by_seed(rows), "tau3mu", "egnn", 3)}
    assert recs["GMT-lin above LRI-Bernoulli", "interp_auc"]["verdict"] == "does not hold"
    sam = recs["GMT-sam above LRI-Bernoulli", "interp_auc"]
    assert sam["verdict"] == "holds" and sam["difference"] == "gmt_sam - method"
    assert sam["comparisons"][0]["mean"] == pytest.approx(0.05)
    # GMT does not enter the post-hoc comparison either
    post = recs["LRI-Bernoulli above every post-hoc method", "interp_auc"]
    assert {c["method"] for c in post["comparisons"]} == {*POST_HOC, "pointmask"}


def test_paper_table_literature_beside_egnn_prec_k1():
    from paper_table import _markdown_table, table_rows

    rows = _pt_rows({"gradcam": [0.7, 0.8, 0.9]}) + _pt_rows(
        {"gradcam": [0.7, 0.8, 0.9]}, bb="dgcnn"
    )
    table = table_rows(rows, 3)
    got = {(t["backbone"], t["method"]): t for t in table}
    assert got["egnn", "gradcam"]["literature"] == {
        "interp_auc": 76.18,
        "prec": 62.05,
        "prec_k": 3,  # the reference's first Tau3Mu k, not the 12 the GMT paper's label says
        "beside": "prec@k1",
    }
    assert got["dgcnn", "gradcam"]["literature"] is None  # the literature reports EGNN only
    # the published PointMask and GMT stand on rows of their own, pending without hepx runs
    assert got["egnn", "pointmask"]["literature"]["interp_auc"] == 55.93
    assert got["egnn", "pointmask"]["metrics"]["interp_auc"]["pending"]
    assert got["egnn", "gmt_lin"]["literature"]["prec"] == 68.94
    assert got["egnn", "pointmask_posthoc"]["literature"] is None
    # PointMask has DGCNN configs (a row without literature), GMT EGNN ones only
    assert got["dgcnn", "pointmask"]["literature"] is None
    assert ("egnn", "gmt_sam") in got and ("dgcnn", "gmt_lin") not in got
    lines = _markdown_table(table, "tau3mu", 3)
    assert lines[0].startswith("| method | backbone | seeds | interp AUC (mean [lo, hi]) |")
    assert "| prec@k1 (k=3) |" in lines[0]
    assert lines[0].endswith("| pred AUC | literature interp AUC (%) | literature prec (%) |")
    gradcam = next(line for line in lines if line.startswith("| gradcam | egnn |"))
    full, pending = "0.800 [0.552, 1.048]", "pending (0 of 3 seeds)"  # no prec@k2/k3, pred AUC
    want = ["gradcam", "egnn", "3", full, full, pending, pending, pending, "76.18", "62.05"]
    assert gradcam == "| " + " | ".join(want) + " |"  # literature prec beside prec@k1's row
    assert next(x for x in lines if x.startswith("| gradcam | dgcnn |")).endswith("| — | — |")


def test_paper_table_mask_pool_run_is_relabelled(tmp_path):
    """The mask-pool run's LRI-Bernoulli rows (own report ``-maskpool``) enter the table as
    ``lri_bernoulli_maskpool`` beside the reference run's, not in place of them."""
    import json

    from paper_table import _collect, _report_jobs

    def report(name, rows):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(rows))

    row = {"dataset": "tau3mu", "backbone": "egnn", "method": "lri_bernoulli", "prec@3": 0.5}
    report(
        "tau3mu_egnn_s0", [{**row, "run": "tau3mu_lri_bernoulli_egnn_s0_e100", "interp_auc": 0.9}]
    )
    report(
        "tau3mu_egnn_s0-maskpool",
        [{**row, "run": "tau3mu_lri_bernoulli_maskpool_egnn_s0_e100", "interp_auc": 0.7}],
    )
    # a --methods re-evaluation holding both runs: told apart by the run
    report(
        "tau3mu_egnn_s1-again",
        [
            {**row, "run": "tau3mu_lri_bernoulli_egnn_s1_e100", "interp_auc": 0.8},
            {**row, "run": "tau3mu_lri_bernoulli_maskpool_egnn_s1_e100", "interp_auc": 0.6},
        ],
    )
    got = {(r["method"], r["seed"]): r["interp_auc"] for r in _collect(tmp_path)}
    assert got == {
        ("lri_bernoulli", 0): 0.9,
        ("lri_bernoulli_maskpool", 0): 0.7,
        ("lri_bernoulli", 1): 0.8,
        ("lri_bernoulli_maskpool", 1): 0.6,
    }
    assert _report_jobs("tau3mu_egnn_s0", None, None) == [
        ("tau3mu_egnn_s0", ("plain", "lri_bernoulli", "lri_gaussian", "pointmask"), None),
        ("tau3mu_egnn_s0-maskpool", ("lri_bernoulli_maskpool",), ["lri_bernoulli"]),
    ]
    assert _report_jobs("tau3mu_egnn_s0", ["ig"], "x") == [
        ("tau3mu_egnn_s0-x", ("plain", "lri_bernoulli", "lri_gaussian", "pointmask"), ["ig"])
    ]
    # with EGNN, GMT's runs get their own report; other backbones have no GMT configs
    gmt = ("tau3mu_egnn_s0-gmt", ("gmt_lin", "gmt_sam"), ["gmt_lin", "gmt_sam"])
    assert _report_jobs("tau3mu_egnn_s0", None, None, "egnn")[-1] == gmt
    assert len(_report_jobs("tau3mu_dgcnn_s0", None, None, "dgcnn")) == 2
    assert _report_jobs("tau3mu_egnn_s0", ["gmt_sam"], "y", "egnn") == [
        (
            "tau3mu_egnn_s0-y",
            ("plain", "lri_bernoulli", "lri_gaussian", "pointmask", "gmt_sam"),
            ["gmt_sam"],
        )
    ]


def test_paper_table_outputs(tmp_path):
    """paper_table.{md,csv,json}: numbers per cell (none for pending ones), the literature,
    the claims as records, the epochs and the command."""
    import json

    from paper_table import _aggregate

    rows = _pt_rows({"lri_bernoulli": [0.90, 0.91, 0.92]}) + _baselines(0.80)
    for r in rows:
        kind = r["method"] if r["method"] in ("lri_bernoulli", "pointmask") else "plain"
        r["run"] = f"tau3mu_{kind}_egnn_s0_e100"
    _aggregate(rows, tmp_path, min_seeds=3, grid=[("tau3mu", "dgcnn")], command="CMD --x")
    doc = json.loads((tmp_path / "paper_table.json").read_text())
    cells = {(c["backbone"], c["method"]): c for c in doc["cells"]}
    auc = cells["egnn", "gradcam"]["metrics"]["interp_auc"]
    assert auc["mean"] == pytest.approx(0.8) and auc["n"] == 3  # sd 0: a zero-width interval
    assert auc["lo"] == pytest.approx(0.8) and auc["hi"] == pytest.approx(0.8)
    assert cells["dgcnn", "gradcam"]["metrics"]["interp_auc"] == {
        "mean": None,
        "lo": None,
        "hi": None,
        "n": 0,
        "pending": True,
    }
    used = {"lri_bernoulli": [100], "plain": [100], "pointmask": [100]}
    assert doc["epochs_used"] == {"tau3mu": used}
    assert {c["verdict"] for c in doc["claims"] if c["backbone"] == "egnn"} >= {"holds"}
    md = (tmp_path / "paper_table.md").read_text()
    assert "```bash\nCMD --x\n```" in md and "## Tau3Mu-sim (`tau3mu`)" in md
    assert "most likely precision@3" in md and "BENCH_EPOCHS" in md
    assert "also those without a\nrecord yet" in md  # the claims' rule, said on the page
    assert "actstrack and synmol are shortened from the reference schedule" in md
    head = (tmp_path / "paper_table.csv").read_text().splitlines()[0].split(",")
    assert head[:4] == ["dataset", "backbone", "method", "seeds"]
    assert {"interp_auc_mean", "interp_auc_lo", "literature_prec"} <= set(head)
    assert "## Sanity checks" not in md  # no report ran the checks


def test_paper_table_checks_section(tmp_path):
    """The sanity checks get their own section: a row per method and backbone whose reports
    ran them, mean [interval] over seeds; methods without checks are left out."""
    from paper_table import _aggregate

    rows = _pt_rows({"lri_bernoulli": [0.90, 0.91, 0.92]}) + _baselines(0.80)
    for r in rows:
        kind = r["method"] if r["method"] in ("lri_bernoulli", "pointmask") else "plain"
        r["run"] = f"tau3mu_{kind}_egnn_s0_e100"
        if r["method"] == "gradgeo":
            r["sanity_random_spearman"] = 0.5 + 0.1 * r["seed"]  # 0.5, 0.6, 0.7
            r["sanity_cascade_head_spearman"] = 0.8
            r["sanity_perturb_spearman"] = 0.95
            r["sanity_perturb_missed"] = int(r["seed"] == 2)  # one draw missed, seed 2
    _aggregate(rows, tmp_path, min_seeds=3)
    md = (tmp_path / "paper_table.md").read_text()
    section = md.split("## Sanity checks")[1]
    assert (
        "| method | backbone | head randomised | all weights randomised | weights perturbed |"
        in (section)
    )
    half = 4.302653 * 0.1 / 3**0.5  # t(0.975, 2) * sd / sqrt(3)
    line = f"| gradgeo | egnn | 0.800 [0.800, 0.800] | 0.600 [{0.6 - half:.3f}, {0.6 + half:.3f}]"
    assert line in section
    assert "| 0.950 [0.950, 0.950] (tolerance missed in 1 draw) |" in section
    assert "| gradcam |" not in section  # no checks in its reports


def test_paper_table_table_only_reads_recorded_reports(tmp_path, monkeypatch):
    """``--table-only``: the table of the recorded reports (``reports/<name>.json``) with a
    pending cell for every dataset and backbone asked for, and the command that computes the
    cells; nothing simulated, trained or evaluated."""
    import json

    import paper_table

    def refuse(*args, **kwargs):
        raise AssertionError("--table-only must not simulate, train or evaluate")

    for name in ("simulated_dataset", "train_run", "evaluate"):
        monkeypatch.setattr(paper_table, name, refuse)
    (tmp_path / "reports").mkdir()
    rows = [
        {"dataset": "tau3mu", "backbone": "egnn", "method": "gradcam", "interp_auc": 0.8,
         "prec@3": 0.6, "run": "tau3mu_plain_egnn_s0_e100"},
    ]  # fmt: skip
    (tmp_path / "reports" / "tau3mu_egnn_s0.json").write_text(json.dumps(rows))
    args = ["--out", str(tmp_path), "--datasets", "actstrack", "tau3mu", "--table-only"]
    paper_table.main(args)
    doc = json.loads((tmp_path / "paper_table.json").read_text())
    cells = {(c["dataset"], c["backbone"], c["method"]): c for c in doc["cells"]}
    gradcam = cells["tau3mu", "egnn", "gradcam"]["metrics"]["interp_auc"]
    assert gradcam["n"] == 1 and gradcam["pending"] and gradcam["mean"] is None
    assert {(ds, bb) for ds, bb, _ in cells} == {
        (ds, bb) for ds in ("actstrack", "tau3mu") for bb in ("egnn", "dgcnn")
    }
    assert "--table-only" not in doc["command"] and "--datasets actstrack tau3mu" in doc["command"]


def test_paper_table_records_finished_reports(tmp_path):
    """``--record DIR``: a finished report's rows are copied to ``DIR/reports/<name>.json``,
    and a report recorded there counts as finished."""
    from paper_table import _collect, _finished, record_report

    report = tmp_path / "out" / "reports" / "tau3mu_egnn_s0"
    record = tmp_path / "record"
    assert not _finished(report, record)
    report.mkdir(parents=True)
    rows = '[{"dataset": "tau3mu", "backbone": "egnn", "method": "gradcam", "prec@3": 0.5}]'
    (report / "results.json").write_text(rows)
    assert _finished(report, None)
    copy = record_report(report, record)
    assert copy == record / "reports" / "tau3mu_egnn_s0.json" and copy.read_text() == rows
    assert _finished(tmp_path / "elsewhere" / "tau3mu_egnn_s0", record)
    assert not _finished(tmp_path / "elsewhere" / "tau3mu_egnn_s1", record)
    [row] = _collect(record / "reports")
    assert row["seed"] == 0 and row["prec@k1"] == 0.5


def test_paper_table_records_the_runs_curves(tmp_path):
    """``--record DIR``: a trained run's per-epoch metrics and test metrics are copied to
    ``DIR/curves/<run>/``; a run without them is left out."""
    from paper_table import record_curve

    run = tmp_path / "runs" / "actstrack_pointmask_dgcnn_s1_e100"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,val_interp_auc\n0,0.5\n")
    record = tmp_path / "record"
    assert record_curve(run, record) is None and not (record / "curves").exists()
    (run / "test_metrics.json").write_text('{"selected_epoch": 0}')
    kept = record_curve(run, record)
    assert kept == record / "curves" / run.name
    assert sorted(p.name for p in kept.iterdir()) == ["metrics.csv", "test_metrics.json"]
    assert (kept / "metrics.csv").read_text() == "epoch,val_interp_auc\n0,0.5\n"


def test_paper_table_per_method_reports(tmp_path):
    """``--per-method``: one report per method a job's runs give, named
    ``<name>-<method>`` (tags holding ``_s``, as captum_saliency and gmt_sam do, still give the
    seed), and their rows make the same table rows as one report would."""
    import json

    from paper_table import MASKPOOL, _collect, split_by_method

    from hepx.explain.registry import POST_HOC

    base = split_by_method("tau3mu_egnn_s2", ("plain", "lri_bernoulli", "pointmask"), None)
    assert [m for _, _, [m] in base] == [*POST_HOC, "lri_bernoulli", "pointmask"]
    assert {kinds for _, kinds, [m] in base if m in POST_HOC} == {("plain",)}
    assert base[0] == ("tau3mu_egnn_s2-" + POST_HOC[0], ("plain",), [POST_HOC[0]])
    assert base[-1] == ("tau3mu_egnn_s2-pointmask", ("pointmask",), ["pointmask"])
    pool = split_by_method("tau3mu_egnn_s2-maskpool", (MASKPOOL,), ["lri_bernoulli"])
    assert pool == [("tau3mu_egnn_s2-maskpool-lri_bernoulli", (MASKPOOL,), ["lri_bernoulli"])]
    gmt = split_by_method("tau3mu_egnn_s2-gmt", ("gmt_lin", "gmt_sam"), ["gmt_sam"])
    assert gmt == [("tau3mu_egnn_s2-gmt-gmt_sam", ("gmt_sam",), ["gmt_sam"])]
    # --methods with --per-method picks reports by their table method, names unchanged
    kinds = ("plain", "lri_bernoulli")
    picked = split_by_method("tau3mu_egnn_s2", kinds, None, only=["gradcam", "lri_bernoulli"])
    assert picked == [
        ("tau3mu_egnn_s2-gradcam", ("plain",), ["gradcam"]),
        ("tau3mu_egnn_s2-lri_bernoulli", ("lri_bernoulli",), ["lri_bernoulli"]),
    ]
    pool_job = ("tau3mu_egnn_s2-maskpool", (MASKPOOL,), ["lri_bernoulli"])
    assert split_by_method(*pool_job, only=["gradcam", "lri_bernoulli"]) == []
    assert split_by_method(*pool_job, only=[MASKPOOL]) == pool
    reports = {
        "tau3mu_egnn_s2-captum_saliency": ("captum_saliency", "tau3mu_plain_egnn_s2_e100"),
        "tau3mu_egnn_s2-gmt-gmt_sam": ("gmt_sam", "tau3mu_gmt_sam_egnn_s2_e100"),
        "tau3mu_egnn_s2-maskpool-lri_bernoulli": (
            "lri_bernoulli",
            f"tau3mu_{MASKPOOL}_egnn_s2_e100",
        ),
        "tau3mu_egnn_s2-lri_bernoulli": ("lri_bernoulli", "tau3mu_lri_bernoulli_egnn_s2_e100"),
    }
    for name, (method, run) in reports.items():
        row = {"dataset": "tau3mu", "backbone": "egnn", "method": method, "run": run}
        (tmp_path / f"{name}.json").write_text(json.dumps([{**row, "prec@3": 0.5}]))
    got = {r["method"]: r["seed"] for r in _collect(tmp_path)}
    assert got == {"captum_saliency": 2, "gmt_sam": 2, MASKPOOL: 2, "lri_bernoulli": 2}


def test_train_run_label_names_a_variant_run(tmp_path):
    from _common import train_run

    data = tmp_path / "data"
    cfg = shortened_config("tau3mu", "lri_bernoulli", "egnn", epochs=100, seed=1, data=data)
    pooled = ["model.bernoulli.mask_pool=true"]
    run = tmp_path / "runs" / "tau3mu_lri_bernoulli_maskpool_egnn_s1_e100"
    _fake_run(run, apply_overrides(cfg, pooled))
    kwargs = dict(epochs=100, seed=1, runs_dir=tmp_path / "runs", data=data, overrides=pooled)
    assert (
        train_run("tau3mu", "lri_bernoulli", "egnn", label="lri_bernoulli_maskpool", **kwargs)
        == run
    )


# --- benchmarks/paper_table.py: SynMol --------------------------------------------------------


def test_paper_table_synmol_skips_runs_without_a_shipped_config(tmp_path, monkeypatch):
    """A data set without PointMask and GMT configs (the shipped configs with SynMol's removed):
    its PointMask and GMT runs are left out with one reason each, the mask-pool run
    (LRI-Bernoulli's config) stays; ActsTrack loses nothing."""
    import shutil

    import paper_table
    from paper_table import _report_jobs, available_jobs, has_config

    assert has_config("synmol", "pointmask", "egnn") and has_config("synmol", "gmt_sam", "egnn")
    configs = tmp_path / "configs"
    shutil.copytree(paper_table.CONFIGS, configs)
    for path in (configs / "synmol").glob("*.yaml"):
        if path.name.startswith(("pointmask_", "gmt_")):
            path.unlink()
    monkeypatch.setattr(paper_table, "CONFIGS", configs)
    assert has_config("synmol", "lri_bernoulli_maskpool", "dgcnn")
    assert not has_config("synmol", "pointmask", "egnn")
    jobs, reasons = available_jobs(
        _report_jobs("synmol_egnn_s0", None, None, "egnn"), *("synmol", "egnn")
    )
    assert jobs == [
        ("synmol_egnn_s0", ("plain", "lri_bernoulli", "lri_gaussian"), None),
        ("synmol_egnn_s0-maskpool", ("lri_bernoulli_maskpool",), ["lri_bernoulli"]),
    ]  # the GMT report is dropped: none of its runs has a config
    assert reasons == [
        "synmol / egnn: no pointmask run, no shipped config synmol/pointmask_egnn.yaml",
        "synmol / egnn: no gmt_lin run, no shipped config synmol/gmt_lin_egnn.yaml",
        "synmol / egnn: no gmt_sam run, no shipped config synmol/gmt_sam_egnn.yaml",
    ]
    # a re-evaluation keeps its post-hoc methods, drops the skipped runs' own scores, and is
    # dropped when nothing is left to evaluate
    jobs, _ = available_jobs(
        _report_jobs("synmol_egnn_s0", ["ig", "pointmask", "gmt_sam"], "x", "egnn"),
        "synmol",
        "egnn",
    )
    assert jobs == [("synmol_egnn_s0-x", ("plain", "lri_bernoulli", "lri_gaussian"), ["ig"])]
    jobs, _ = available_jobs(
        _report_jobs("synmol_egnn_s0", ["gmt_sam"], "y", "egnn"), "synmol", "egnn"
    )
    assert jobs == []
    full = _report_jobs("actstrack_egnn_s0", None, None, "egnn")
    assert available_jobs(full, "actstrack", "egnn") == (full, [])


def test_paper_table_synmol_rows_header_and_claims():
    """SynMol rows: PointMask with both backbones, GMT with EGNN only (its configs), no
    literature; precision@k at the k of the shipped SynMol configs; the GMT claim is pending
    with EGNN and not tested (no config) with DGCNN."""
    from paper_table import TITLES, _by_seed, _markdown_table, claims, table_rows

    from hepx.config import resolve_run_config

    rows = _pt_rows({"lri_bernoulli": [0.9], "gradcam": [0.8]}, ds="synmol")
    table = table_rows(rows, 1, grid=[("synmol", "dgcnn")])
    got = {(t["backbone"], t["method"]) for t in table}
    assert ("egnn", "gradcam") in got and ("dgcnn", "lri_gaussian") in got
    assert ("dgcnn", "lri_bernoulli_maskpool") in got
    assert {("egnn", "pointmask"), ("dgcnn", "pointmask"), ("egnn", "gmt_sam")} <= got
    assert not {m for b, m in got if b == "dgcnn"} & {"gmt_lin", "gmt_sam"}
    assert all(t["literature"] is None for t in table)
    for name in ("plain_egnn", "lri_bernoulli_dgcnn", "lri_gaussian_point_transformer"):
        ks = resolve_run_config(load_yaml(SHIPPED / "synmol" / f"{name}.yaml"))["eval"]
        assert ks["precision_k"] == [5, 8, 10]
    head = _markdown_table(table, "synmol", 1)[0]
    assert "| prec@k1 (k=5) | prec@k2 (k=8) | prec@k3 (k=10) |" in head
    assert TITLES["synmol"] == "SynMol"
    recs = {(r["claim"], r["metric"]): r for r in claims(_by_seed(rows), "synmol", "egnn", 1)}
    assert (
        recs["GMT-lin above LRI-Bernoulli", "interp_auc"]["verdict"] == "pending (no gmt_lin runs)"
    )
    dg = {(r["claim"], r["metric"]): r for r in claims(_by_seed(rows), "synmol", "dgcnn", 1)}
    gmt = dg["GMT-sam above LRI-Bernoulli", "interp_auc"]
    assert gmt["verdict"] == "not tested (no shipped config synmol/gmt_sam_dgcnn.yaml)"
    # Tau3Mu has GMT configs: still pending without runs
    tau = {
        (r["claim"], r["metric"]): r for r in claims(_by_seed(_pt_rows({})), "tau3mu", "egnn", 1)
    }
    assert (
        tau["GMT-sam above LRI-Bernoulli", "interp_auc"]["verdict"] == "pending (no gmt_sam runs)"
    )


def test_paper_table_synmol_rows_take_the_report_dataset(tmp_path):
    """SynMol runs read generic data: their report rows say ``dataset: generic``. The table
    files them under the report's dataset, ``synmol``, with precision@k of its own k list, and
    still tells the mask-pool run in a re-evaluation by its run name."""
    import json

    from paper_table import _collect, epochs_used, table_dataset

    def report(name, rows):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(rows))

    row = {"dataset": "generic", "method": "lri_bernoulli", "prec@5": 0.5, "prec@10": 0.4}
    report(
        "synmol_point_transformer_s0",
        [{**row, "backbone": "point_transformer", "run": "synmol_plain_point_transformer_s0_e2"}],
    )
    report(
        "synmol_egnn_s1-again",
        [
            {**row, "backbone": "egnn", "run": "synmol_lri_bernoulli_egnn_s1_e40"},
            {**row, "backbone": "egnn", "run": "synmol_lri_bernoulli_maskpool_egnn_s1_e40"},
        ],
    )
    got = {(r["dataset"], r["backbone"], r["method"], r["seed"]): r for r in _collect(tmp_path)}
    assert set(got) == {
        ("synmol", "point_transformer", "lri_bernoulli", 0),
        ("synmol", "egnn", "lri_bernoulli", 1),
        ("synmol", "egnn", "lri_bernoulli_maskpool", 1),
    }
    assert got["synmol", "egnn", "lri_bernoulli", 1]["prec@k2"] == 0.4  # k = 5, 10: k2 is 10
    assert epochs_used(got.values())["synmol"] == {
        "lri_bernoulli": [40],
        "lri_bernoulli_maskpool": [40],
        "plain": [2],
    }
    # the rows of ActsTrack / Tau3Mu reports keep their dataset
    assert table_dataset({"dataset": "tau3mu", "backbone": "egnn"}, "tau3mu_egnn_s2-x") == "tau3mu"
    assert table_dataset({"dataset": "tau3mu", "backbone": "egnn"}, "odd") == "tau3mu"


def test_paper_table_synmol_arguments():
    """``--datasets synmol`` parses, with its own epochs and sample count; ``--smoke`` shortens
    SynMol like the others; an unknown dataset is refused."""
    from _common import EVENTS
    from paper_table import MASKPOOL, SMOKE_EVENTS, _parser, _settings

    assert EVENTS["synmol"] == 8663  # the paper's SynMol (Table 1)
    ap = _parser()
    args = ap.parse_args(
        ["--datasets", "synmol", "--samples-synmol", "500", "--epochs-synmol", "7"]
    )
    assert args.datasets == ["synmol"] and args.samples_synmol == 500 and args.epochs_synmol == 7
    args = ap.parse_args(["--datasets", "synmol", "--smoke"])
    _settings(args)
    assert args.epochs_synmol == 2 and SMOKE_EVENTS["synmol"] < 1000
    # the checks run unless --no-checks (then neither the sanity nor the invariance checks)
    opts = _settings(ap.parse_args([]))[1]
    assert opts.get("sanity", True) and opts.get("robustness", True)
    opts = _settings(ap.parse_args(["--no-checks"]))[1]
    assert opts["sanity"] is False and opts["robustness"] is False
    # --compile trains with fused layers; without it the runs are trained eagerly
    assert "train.compile=true" in _settings(ap.parse_args(["--compile"]))[0]
    assert not any("compile" in o for o in _settings(ap.parse_args([]))[0])
    with pytest.raises(SystemExit):
        ap.parse_args(["--datasets", "plbind"])
    # an unknown --methods name is refused, not silently left without a report
    assert ap.parse_args(["--per-method", "--methods", "gradcam", MASKPOOL]).methods[1] == MASKPOOL
    with pytest.raises(SystemExit) as exit_info:
        ap.parse_args(["--per-method", "--methods", "gradcma"])
    assert exit_info.value.code == 2


def test_simulated_synmol_is_built_once(tmp_path, monkeypatch):
    """SynMol is simulated and converted once and reused; a finished simulation whose
    conversion is missing is converted without simulating again."""
    pytest.importorskip("rdkit")
    import _common

    from hepx.sim.synmol import moses_smiles_path

    try:
        moses_smiles_path()
    except Exception:
        pytest.skip("molsets is not installed (pip install --no-deps molsets)")
    import json
    import shutil

    data = _common.simulated_dataset("synmol", 12, seed=2, workdir=tmp_path)
    assert data == tmp_path / "data" / "synmol_12_s2"
    assert json.loads((data / "manifest.json").read_text())["num_samples"] == 12

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated again")

    monkeypatch.setattr(_common.sim, "simulate_synmol", no_simulation)
    assert _common.simulated_dataset("synmol", 12, seed=2, workdir=tmp_path) == data
    shutil.rmtree(data)
    assert (
        _common.simulated_dataset("synmol", 12, seed=2, workdir=tmp_path) / "manifest.json"
    ).exists()
    with pytest.raises(ValueError, match="no simulation of 'plbind'"):
        _common.simulated_dataset("plbind", 12, workdir=tmp_path)


def test_flop_floor_traffic_counts_operands_and_results_by_hand():
    """flop_floor's memory traffic: an operator's tensor operands and results in bytes (an
    operand at most its storage), views and allocations left out; a product's FLOPs
    2 m k n."""
    import torch
    from flop_floor import _matmul_flops, _traffic

    a, b, v = torch.rand(4, 3), torch.rand(3, 5), torch.rand(10)
    big = torch.rand(100)

    def step():
        torch.mm(a, b)  # (12 + 15 + 20) floats, 2 * 4 * 3 * 5 FLOPs
        a.t()  # a view: nothing moved
        torch.empty(1000)  # an allocation: nothing moved
        v + v  # two reads of v, one result: 30 floats
        big[:10] * 2.0  # the slice reads 10 floats (not the 100 of its storage), writes 10

    ops = _traffic(step)
    assert [(b, f) for _, b, f in ops] == [(47 * 4, 120), (30 * 4, 0), (20 * 4, 0)]
    assert [name for name, _, _ in ops] == ["aten.mm.default", "aten.add.Tensor", "aten.mul.Tensor"]
    assert _matmul_flops("aten.addmm.default", [(5,), (4, 3), (3, 5)]) == 120
    assert _matmul_flops("aten.bmm.default", [(2, 4, 3), (2, 3, 5)]) == 240


# --- benchmarks/explainer_diagnostics.py ----------------------------------------------------


def test_explainer_diagnostics_event_spearman_against_scipy():
    import torch
    from explainer_diagnostics import event_spearman
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    event = np.repeat(np.arange(5), [4, 7, 2, 5, 9])  # an event of 2 points does not count
    a, b = rng.random(len(event)), rng.random(len(event))
    expected = np.mean(
        [spearmanr(a[event == e], b[event == e])[0] for e in range(5) if (event == e).sum() >= 3]
    )
    ev = torch.from_numpy(event)
    got = event_spearman(
        {"score": torch.from_numpy(a), "event": ev}, {"score": torch.from_numpy(b), "event": ev}
    )
    assert got == pytest.approx(expected, rel=1e-6)
    same = event_spearman(
        {"score": torch.from_numpy(a), "event": ev},
        {"score": torch.from_numpy(2 * a + 1), "event": ev},
    )
    assert same == pytest.approx(1.0)


def test_explainer_diagnostics_medians_over_the_points_of_positive_events():
    import torch
    from explainer_diagnostics import median_scores

    s = {  # event 0 positive: signal 0.9, 0.1, 0.5; background 1e-9, 0.2, 3.0; event 1 negative
        "score": torch.tensor([0.9, 1e-9, 0.1, 0.2, 0.5, 3.0, 7.0, 8.0]),
        "label": torch.tensor([1, 0, 1, 0, 1, 0, 1, 0]),
        "event": torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]),
        "y": torch.tensor([1.0, 0.0]),
    }
    assert median_scores(s) == pytest.approx((0.5, 0.2))


def test_explainer_diagnostics_runs(tau_plain_run, capsys):
    from explainer_diagnostics import main

    main([str(tau_plain_run), "--events", "24", "--fit-epochs", "1", "--fit-batches", "2"])
    out = capsys.readouterr().out
    assert "| per graph (hepx) |" in out and "| per batch (baseline) |" in out
    assert "per-event Spearman, seed 0 vs seed 1:" in out
    assert "per test event:" in out and "| share of points below 1e-3 |" in out


def test_mask_stability_by_hand(tmp_path):
    import mask_stability

    run = tmp_path / "run"
    run.mkdir()
    lines = ["epoch,val_pred_auc,val_interp_auc"]
    lines += [f"{e},{p},{a}" for e, p, a in [(0, 0.7, 0.1), (1, 0.9, 0.4), (2, 0.8, 0.8)]]
    lines += ["3,0.95,0.6"]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    (run / "test_metrics.json").write_text('{"selected_epoch": 3, "test_interp_auc": 0.55}')
    rows, test = mask_stability.read_run(run)
    s = mask_stability.mask_stability(rows, test["selected_epoch"], from_epoch=1)
    # epochs 1-3: interp 0.4, 0.8, 0.6 (mean 0.6, sd 0.2); pred 0.9, 0.8, 0.95
    assert s["epochs"] == 3
    assert s["interp_mean"] == pytest.approx(0.6)
    assert s["interp_sd"] == pytest.approx(0.2)
    assert (s["interp_min"], s["interp_max"]) == (0.4, 0.8)
    # Pearson by hand: deviations (-0.2, 0.2, 0) and (0.0167, -0.0833, 0.0667)
    dp = np.array([0.9, 0.8, 0.95]) - 2.65 / 3
    di = np.array([-0.2, 0.2, 0.0])
    assert s["correlation"] == pytest.approx(di @ dp / np.sqrt((di @ di) * (dp @ dp)))
    assert s["selected_interp_auc"] == 0.6
    with pytest.raises(ValueError, match="at least 2 epochs"):
        mask_stability.mask_stability(rows, 3, from_epoch=3)


def test_mask_stability_bad_runs_end_with_one_line_and_exit_2(tmp_path, capsys):
    import mask_stability

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "test_metrics.json").write_text('{"selected_epoch": 1}')
    cases = {
        tmp_path / "missing": "no metrics.csv",
        plain: "no column val_interp_auc",
    }
    (plain / "metrics.csv").write_text("epoch,val_pred_auc\n0,0.9\n1,0.95\n")
    for run, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            mask_stability.main([str(run)])
        assert exit_info.value.code == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert "\n" not in err and message in err and captured.out == ""
