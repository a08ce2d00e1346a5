"""The benchmark scripts' shared run settings (benchmarks/_common.py)."""

from __future__ import annotations

import sys
from pathlib import Path

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
            ref = load_yaml(SHIPPED / kind / f"{method}_{backbone}.yaml")["train"]["epochs"]
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
