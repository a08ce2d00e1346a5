"""Training loop: determinism, resume, distributed run, bad configs and checkpoints."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from hepx.cli import main
from hepx.config import resolve_run_config
from hepx.errors import CheckpointError, ConfigError, InputError
from hepx.models import build_model
from hepx.models.backbones.base import Dropout
from hepx.run import load_checkpoint, migrate_checkpoint, model_from_checkpoint
from hepx.training import (
    check_frame_units,
    lr_factor,
    recalibrate_batch_norm,
    train,
)
from hepx.training.ema import ExponentialMovingAverage


@pytest.fixture
def tiny_ds(acts_dataset):
    """The session ActsTrack dataset (48 events of acts_files); runs go to tmp_path."""
    return acts_dataset


def _cfg(ds, **train):
    return {
        "dataset": {"path": str(ds), "kind": "actstrack"},
        "model": {
            "backbone": "dgcnn",
            "method": "lri_bernoulli",
            "pos_scale": 0.001,
            "hidden_channels": 8,
            "num_layers": 2,
        },
        "train": {"epochs": 3, "warmup": 1, "batch_size": 8, "seed": 3, **train},
        "eval": {"precision_k": [4, 8]},
    }


def _weights(run):
    return load_checkpoint(run / "checkpoints" / "last.pt")["model_state"]


def test_deterministic_and_resume_equals_uninterrupted(tiny_ds, tmp_path):
    full = train(_cfg(tiny_ds), tmp_path / "a", progress=False)
    again = train(_cfg(tiny_ds), tmp_path / "b", progress=False)
    assert full == again
    train(_cfg(tiny_ds, epochs=2), tmp_path / "c", progress=False)
    resumed = train(_cfg(tiny_ds, epochs=3), tmp_path / "c", resume=True, progress=False)
    assert resumed == full
    wa, wc = _weights(tmp_path / "a"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    hist_a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    hist_c = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert [r["train_loss"] for r in hist_a] == [r["train_loss"] for r in hist_c]
    assert [r["phase"] for r in hist_a] == ["warmup", "lri", "lri"]
    # run-dir contents and a checkpoint that loads with weights_only=True
    state = torch.load(tmp_path / "a" / "checkpoints" / "best.pt", weights_only=True)
    assert state["config"]["model"]["pos_dim"] == 3
    model = model_from_checkpoint(state)
    assert sum(p.numel() for p in model.parameters()) > 0
    test = json.loads((tmp_path / "a" / "test_metrics.json").read_text())
    assert {
        "test_pred_auc",
        "test_pred_acc",
        "test_interp_auc",
        "test_prec@4",
        "test_prec@8",
    } <= set(test)
    assert (
        yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["model"]["bernoulli"][
            "final_r"
        ]
        == 0.5
    )
    with pytest.raises(InputError, match="already holds a run"):
        train(_cfg(tiny_ds), tmp_path / "a", progress=False)
    with pytest.raises(
        CheckpointError, match=r"config differs .* train\.batch_size \(run 8, now 4\)"
    ):
        train(_cfg(tiny_ds, batch_size=4), tmp_path / "a", resume=True, progress=False)
    # a version-1 run (before model.message_dropout) resumed with the current default
    last = tmp_path / "a" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["version"] = 1
    del state["config"]["model"]["message_dropout"]
    torch.save(state, last)
    with pytest.raises(CheckpointError, match=r"model\.message_dropout \(run 0\.2, now 0\.0\)"):
        train(_cfg(tiny_ds), tmp_path / "a", resume=True, progress=False)


def _message_dropouts(model):
    convs = model.classifier.backbone.convs
    return [m.p for m in convs.modules() if isinstance(m, Dropout)]


@pytest.mark.parametrize("backbone", ["dgcnn", "egnn"])
def test_message_dropout_off_by_default_and_version_1_checkpoints_keep_it(backbone):
    cfg = {"backbone": backbone, "method": "lri_gaussian", "hidden_channels": 8, "num_layers": 2}
    new = build_model(cfg, pos_dim=3, x_dim=0)
    assert _message_dropouts(new) == []
    assert _message_dropouts(build_model({**cfg, "message_dropout": 0.3}, pos_dim=3, x_dim=0))
    # a version-1 checkpoint: no message_dropout key, message MLPs built with model.dropout
    old = build_model({**cfg, "message_dropout": 0.2}, pos_dim=3, x_dim=0)
    old_cfg = {k: v for k, v in old.config.items() if k != "message_dropout"}
    state = {"version": 1, "config": {"model": old_cfg}, "model_state": old.state_dict()}
    loaded = model_from_checkpoint(migrate_checkpoint(state))
    assert _message_dropouts(loaded) == _message_dropouts(old) != []
    ref, got = old.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    # the same weights under the current layout do not fit: the error says so
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(migrate_checkpoint({**state, "version": 2}))


def test_recalibrate_batch_norm_is_the_plain_average_of_batch_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5)
    ).eval()
    batches = [torch.randn(n, 3) * (1 + i) + i for i, n in enumerate((5, 9, 7))]
    assert recalibrate_batch_norm(net, batches) == 3
    with torch.no_grad():
        pre = [net[0](b) for b in batches]  # independent reference: per-batch mean / var
    mean = torch.stack([h.mean(0) for h in pre]).mean(0)
    var = torch.stack([h.var(0, unbiased=True) for h in pre]).mean(0)
    bn = net[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-6)
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training  # momentum and mode restored
    assert recalibrate_batch_norm(torch.nn.Linear(3, 1), batches) == 0  # nothing to do


def test_bn_recalibration_changes_the_statistics_not_the_weights(tiny_ds, tmp_path):
    cfg = _cfg(tiny_ds, epochs=2)
    train(cfg, tmp_path / "on", progress=False)
    train(_cfg(tiny_ds, epochs=2, bn_recalibration_batches=0), tmp_path / "off", progress=False)
    on, off = _weights(tmp_path / "on"), _weights(tmp_path / "off")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "on" / "checkpoints" / "last.pt"))
    params = {k for k, _ in model.named_parameters()}
    assert params and all(torch.equal(on[k], off[k]) for k in params)  # same training stream
    stats = [k for k in on if k.endswith("running_mean")]
    assert stats and not all(torch.equal(on[k], off[k]) for k in stats)
    with pytest.raises(
        ConfigError, match=r"'train\.bn_recalibration_batches' must be a non-negative integer"
    ):
        resolve_run_config(_cfg(tiny_ds, bn_recalibration_batches=-1))


def test_config_errors(tiny_ds):
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epoch'.*allowed: epochs"):
        resolve_run_config({**_cfg(tiny_ds), "train": {"epoch": 3}})
    with pytest.raises(
        ConfigError, match=r"'train\.batch_size' must be a positive integer, got 'big'"
    ):
        resolve_run_config({**_cfg(tiny_ds), "train": {"batch_size": "big"}})
    with pytest.raises(ConfigError, match="backbone"):
        resolve_run_config({**_cfg(tiny_ds), "model": {"backbone": "resnet"}})
    with pytest.raises(InputError, match="expects a 'tau3mu' dataset"):
        train(
            {**_cfg(tiny_ds), "dataset": {"path": str(tiny_ds), "kind": "tau3mu"}},
            "/nonexistent/run",
        )
    # the beam frame's curvature scale is in m^-1: positions left in mm are refused
    mm = _cfg(tiny_ds)
    mm["model"] = {**mm["model"], "frame": "beam", "pos_scale": 1.0}
    with pytest.raises(ConfigError, match=r"in mm, so set model.pos_scale: 0.001 \(got 1\)"):
        train(mm, "/nonexistent/run")
    meta = {"pos_unit": "mm"}
    check_frame_units({"frame": "beam", "pos_scale": 0.001}, meta)  # mm -> m: accepted
    check_frame_units({"frame": "beam", "pos_scale": 1.0}, {"pos_unit": "m"})
    check_frame_units({"frame": "global", "pos_scale": 1.0}, meta)  # only the beam frame cares
    with pytest.raises(ConfigError, match=r"in cm, so set model.pos_scale: 0.01 \(got 0.001\)"):
        check_frame_units({"frame": "beam", "pos_scale": 0.001}, {"pos_unit": "cm"})


def test_bad_checkpoints(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupted or foreign"):
        load_checkpoint(tmp_path / "garbage.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a hepx checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")


def test_cli_train_bad_config_exit_2(tiny_ds, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**_cfg(tiny_ds), "trian": {}}))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'trian'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_process_distributed_run(tiny_ds, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(tiny_ds, epochs=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "hepx.cli",
        "train",
        str(cfg),
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test["selected_epoch"] in (1,) and test["n_test"] > 0
    hist = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(hist) == 2


@pytest.mark.slow
def test_two_process_distributed_run_with_a_point_budget(tiny_ds, tmp_path):
    """Both ranks get the same number of point-budget batches (else DDP would hang)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_cfg(tiny_ds, epochs=2, max_points_per_batch=200)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += ["--master_port=29519", "-m", "hepx.cli", "train", str(cfg)]
    cmd += ["--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    test = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert test["n_test"] > 0 and math.isfinite(test["test_loss"])
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 2


# --------------------------------------------------------------------------- weight average


def test_exponential_moving_average_by_hand():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    w0 = net[0].weight.detach().clone()
    ema = ExponentialMovingAverage(net, decay=0.5)
    assert not any(p.requires_grad for p in ema.module.parameters())
    live = [torch.full_like(w0, v) for v in (1.0, 2.0, 3.0)]
    expected = w0.clone()
    for n, w in enumerate(live):
        with torch.no_grad():
            net[0].weight.copy_(w)
        net[1].num_batches_tracked += 7
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 2/11, 0.25: the ramp, then never above 0.5
        expected = d * expected + (1 - d) * w
        ema.update(net)
    assert ema.num_updates == 3
    assert torch.allclose(ema.module[0].weight, expected)
    assert int(ema.module[1].num_batches_tracked) == 21  # integer buffers are copied
    assert torch.equal(net[0].weight, live[-1])  # the live model is untouched
    saved = {k: v.clone() for k, v in ema.state_dict().items()}
    ema.reset(net)
    assert torch.equal(ema.module[0].weight, live[-1]) and ema.num_updates == 0
    ema.load_state_dict(saved, 3)
    assert torch.allclose(ema.module[0].weight, expected) and ema.current_decay() == 4 / 13
    with pytest.raises(ValueError, match=r"decay must lie in \(0, 1\)"):
        ExponentialMovingAverage(net, decay=1.0)


def _params(state, model):
    return {k: state[k] for k, _ in model.named_parameters()}


def test_ema_run_averages_the_live_trajectory_it_leaves_unchanged(tiny_ds, tmp_path):
    # one optimiser step per epoch; the live weights after each epoch from plain runs
    base = {"epochs": 3, "warmup": 1, "max_batches_per_epoch": 1}
    live = []
    for n in (1, 2, 3):
        train(_cfg(tiny_ds, **{**base, "epochs": n}), tmp_path / f"live{n}", progress=False)
        live.append(_weights(tmp_path / f"live{n}"))
    full = train(_cfg(tiny_ds, **base, ema_decay=0.9), tmp_path / "ema", progress=False)
    last = load_checkpoint(tmp_path / "ema" / "checkpoints" / "last.pt")
    model = model_from_checkpoint(last)
    keys = list(_params(last["model_state"], model))
    # the live weights train exactly as without the average
    assert all(torch.equal(last["model_state"][k], live[2][k]) for k in keys)
    # the average restarts at the end of the warm-up (w1), then ramps: d = 1/10, then 2/11
    avg = {1: {k: 0.1 * live[0][k] + 0.9 * live[1][k] for k in keys}}
    avg[2] = {k: 2 / 11 * avg[1][k] + 9 / 11 * live[2][k] for k in keys}
    assert last["extra"]["ema_updates"] == 2
    assert all(torch.allclose(last["ema_state"][k], avg[2][k], atol=1e-6) for k in keys)
    assert not all(torch.equal(avg[2][k], live[2][k]) for k in keys)
    # best.pt holds the average of the selected epoch, and so do the test metrics
    best = load_checkpoint(tmp_path / "ema" / "checkpoints" / "best.pt")
    assert best["epoch"] in avg
    assert all(
        torch.allclose(best["model_state"][k], avg[best["epoch"]][k], atol=1e-6) for k in keys
    )
    # resuming restores the average: same result as the uninterrupted run
    train(_cfg(tiny_ds, **{**base, "epochs": 2}, ema_decay=0.9), tmp_path / "res", progress=False)
    resumed = train(
        _cfg(tiny_ds, **base, ema_decay=0.9), tmp_path / "res", resume=True, progress=False
    )
    assert resumed == full
    again = load_checkpoint(tmp_path / "res" / "checkpoints" / "last.pt")["ema_state"]
    assert all(torch.equal(again[k], last["ema_state"][k]) for k in keys)
    # tracking the live weights reproduces the run without the average, on the same trajectory
    plain = train(_cfg(tiny_ds, **base), tmp_path / "plain", progress=False)
    both = train(
        _cfg(tiny_ds, **base, ema_decay=0.9, ema_track_live=True), tmp_path / "both", progress=False
    )
    assert {k: v for k, v in both.items() if "live" not in k} == full
    assert both["live_selected_epoch"] == plain["selected_epoch"]
    assert all(
        both[k.replace("test_", "test_live_")] == v for k, v in plain.items() if "test_" in k
    )
    rows = json.loads((tmp_path / "both" / "metrics.json").read_text())
    plain_rows = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert [r.get("val_live_interp_auc") for r in rows] == [
        r.get("val_interp_auc") for r in plain_rows
    ]
    with pytest.raises(ConfigError, match=r"train\.ema_track_live' must be true or false"):
        resolve_run_config(_cfg(tiny_ds, ema_track_live="yes"))
    with pytest.raises(ConfigError, match=r"set train\.ema_decay as well"):
        resolve_run_config(_cfg(tiny_ds, ema_track_live=True))
    for bad in (1.0, 0, -0.5, True, "0.99"):
        with pytest.raises(ConfigError, match=r"train\.ema_decay"):
            resolve_run_config(_cfg(tiny_ds, ema_decay=bad))


def test_lr_factor_by_hand():
    assert [lr_factor(e, epochs=10) for e in range(10)] == [1.0] * 10
    cos = [lr_factor(e, epochs=10, schedule="cosine", decay_start=6) for e in range(10)]
    assert cos[:6] == [1.0] * 6
    # four decayed epochs: a quarter, half, three quarters and all of the half cosine
    for e, expected in zip(range(6, 10), (0.8550, 0.505, 0.1550, 0.01), strict=True):
        assert cos[e] == pytest.approx(expected, abs=1e-4), e
    one = lr_factor(0, epochs=1, schedule="cosine", final_factor=0.25)
    assert one == pytest.approx(0.25)


def test_cosine_schedule_scales_each_step_and_keeps_the_prefix(tiny_ds, tmp_path):
    # one Adam step from the same initial weights: its first update is lr * g / (|g| + eps),
    # so the largest weight change is the learning rate actually used
    one = {"epochs": 1, "warmup": 0, "max_batches_per_epoch": 1, "lr": 1e-3, "extractor_lr": 2e-3}
    train(_cfg(tiny_ds, **one), tmp_path / "const", progress=False)
    cos = {**one, "lr_schedule": "cosine", "lr_final_factor": 0.1}
    train(_cfg(tiny_ds, **cos), tmp_path / "cos", progress=False)
    state = load_checkpoint(tmp_path / "const" / "checkpoints" / "last.pt")
    torch.manual_seed(3)  # the run's weight initialisation
    init = build_model(state["config"]["model"], pos_dim=3, x_dim=0).state_dict()
    model = model_from_checkpoint(state)
    extractor = {id(p) for p in model.parameter_groups()["extractor"]}
    for run, factor in (("const", 1.0), ("cos", 0.1)):
        w = _weights(tmp_path / run)
        for group, lr in ((False, 1e-3), (True, 2e-3)):
            step = max(
                (w[k] - init[k]).abs().max().item()
                for k, p in model.named_parameters()
                if (id(p) in extractor) == group
            )
            assert step == pytest.approx(lr * factor, rel=1e-3), (run, group)
    groups = load_checkpoint(tmp_path / "cos" / "checkpoints" / "last.pt")["optimizer_state"]
    assert sorted(g["lr"] for g in groups["param_groups"]) == pytest.approx([1e-4, 2e-4])
    # epochs before lr_decay_start train exactly as with the constant rate; resume keeps it
    base = {"epochs": 4, "warmup": 1, "max_batches_per_epoch": 2}
    train(_cfg(tiny_ds, **base), tmp_path / "plain", progress=False)
    decay = {**base, "lr_schedule": "cosine", "lr_decay_start": 2}
    full = train(_cfg(tiny_ds, **decay), tmp_path / "decay", progress=False)
    rows = json.loads((tmp_path / "decay" / "metrics.json").read_text())
    plain_rows = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert [r["lr_factor"] for r in rows] == pytest.approx([1, 1, (1 + 0.01) / 2, 0.01])
    assert [r["train_loss"] for r in rows[:2]] == [r["train_loss"] for r in plain_rows[:2]]
    assert all(
        r["train_loss"] != q["train_loss"] for r, q in zip(rows[2:], plain_rows[2:], strict=True)
    )
    # the last weights differ (the selected epoch's test metrics may agree: both can pick 1)
    last, last_plain = _weights(tmp_path / "decay"), _weights(tmp_path / "plain")
    assert any(not torch.equal(v, last_plain[k]) for k, v in last.items())
    # a run stopped at the decay start and resumed with more epochs is the uninterrupted run
    train(_cfg(tiny_ds, **{**decay, "epochs": 2}), tmp_path / "res", progress=False)
    resumed = train(_cfg(tiny_ds, **decay), tmp_path / "res", resume=True, progress=False)
    assert resumed == full
    w_full, w_res = _weights(tmp_path / "decay"), _weights(tmp_path / "res")
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    # stopped later, the shorter run's last epoch had decayed all the way: not the same run
    train(_cfg(tiny_ds, **{**decay, "epochs": 3}), tmp_path / "short", progress=False)
    short_rows = json.loads((tmp_path / "short" / "metrics.json").read_text())
    assert short_rows[2]["lr_factor"] == 0.01 and math.isclose(rows[2]["lr_factor"], 0.505)


def test_lr_schedule_config_errors(tiny_ds):
    with pytest.raises(ConfigError, match=r"train\.lr_schedule' must be one of constant, cosine"):
        resolve_run_config(_cfg(tiny_ds, lr_schedule="step"))
    with pytest.raises(
        ConfigError, match=r"train\.lr_decay_start' must be a non-negative integer, got -1"
    ):
        resolve_run_config(_cfg(tiny_ds, lr_schedule="cosine", lr_decay_start=-1))
    for bad in (0, 1.5, -0.1):
        with pytest.raises(
            ConfigError, match=r"train\.lr_final_factor' must be a number in \(0, 1\]"
        ):
            resolve_run_config(_cfg(tiny_ds, lr_final_factor=bad))
    with pytest.raises(
        ConfigError, match=r"train\.lr_decay_start' must be a non-negative integer, got 2\.5"
    ):
        resolve_run_config(_cfg(tiny_ds, lr_decay_start=2.5))


def test_resume_a_run_that_predates_a_train_key(tiny_ds, tmp_path):
    full = train(_cfg(tiny_ds), tmp_path / "full", progress=False)
    train(_cfg(tiny_ds, epochs=2), tmp_path / "old", progress=False)
    last = tmp_path / "old" / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    for key in ("lr_schedule", "lr_decay_start", "lr_final_factor", "compile"):
        del state["config"]["train"][key]  # as written before the schedule existed
    del state["config"]["model"]["pool"]  # and before the pool could be chosen
    del state["config"]["model"]["graph"]["space"]
    torch.save(state, last)
    assert train(_cfg(tiny_ds), tmp_path / "old", resume=True, progress=False) == full
    # a key the run did record still has to match
    with pytest.raises(CheckpointError, match=r"train\.lr_schedule \(run constant, now cosine\)"):
        train(_cfg(tiny_ds, lr_schedule="cosine"), tmp_path / "old", resume=True, progress=False)


@pytest.mark.parametrize("method", ["gmt_lin", "gmt_sam", "pointmask"])
def test_gmt_and_pointmask_runs_train_select_by_accuracy_and_reopen(tiny_ds, tmp_path, method):
    from torch_geometric.loader import DataLoader

    from hepx.explain import get_explainer
    from hepx.run import TrainedRun

    cfg = _cfg(tiny_ds, warmup=0, selection_metric="pred_acc", max_batches_per_epoch=3)
    cfg["model"]["method"] = method
    metrics = train(cfg, tmp_path / method, progress=False)
    rows = json.loads((tmp_path / method / "metrics.json").read_text())
    # the highest validation accuracy, ties to the lower validation loss
    best = max(rows, key=lambda r: (r["val_pred_acc"], -r["val_loss"]))
    assert metrics["selected_epoch"] == best["epoch"]
    run = TrainedRun.open(tmp_path / method)
    model = run.model()
    assert type(model).__name__ == {"gmt_lin": "GMTLin", "gmt_sam": "GMTSam"}.get(
        method, "PointMask"
    )
    batch = next(iter(DataLoader(run.splits()["test"], batch_size=4)))
    scores = get_explainer(method)(model, batch).scores
    assert scores.shape == (batch.num_nodes,) and torch.isfinite(scores).all()


# --------------------------------------------------------------------------- batches by points


def test_point_budget_off_is_bit_identical_and_on_is_seeded_and_within_budget(
    tiny_ds, tmp_path, monkeypatch
):
    import numpy as np

    from hepx.data import load_dataset
    from hepx.data.batching import batch_sizes, point_counts
    from hepx.training.loop import FitLoop

    base = train(_cfg(tiny_ds, epochs=2), tmp_path / "base", progress=False)
    off = _cfg(tiny_ds, epochs=2, max_points_per_batch=None, eval_max_points_per_batch=None)
    assert train(off, tmp_path / "off", progress=False) == base
    wa, wb = _weights(tmp_path / "base"), _weights(tmp_path / "off")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    hist = {r: _history(tmp_path / r) for r in ("base", "off")}
    assert hist["base"] == hist["off"]

    counts = point_counts(load_dataset(tiny_ds))
    budget = int(3 * np.median(counts))  # a few events per batch, fewer than batch_size 8
    seen: list[list[tuple[int, int]]] = []
    original = FitLoop.train_loader

    def spy(self, epoch):
        loader = original(self, epoch)
        seen.append(batch_sizes(loader))
        return loader

    monkeypatch.setattr(FitLoop, "train_loader", spy)
    on = _cfg(tiny_ds, epochs=3, max_points_per_batch=budget, eval_max_points_per_batch=budget)
    first = train(on, tmp_path / "on", progress=False)
    assert train(on, tmp_path / "on2", progress=False) == first  # seeded
    assert first["n_test"] == base["n_test"] and math.isfinite(first["test_loss"])
    for epoch in seen:
        assert all(p <= budget or s == 1 for s, p in epoch)
        assert max(s for s, _ in epoch) <= 8  # batch_size caps the events
        assert sum(s for s, _ in epoch) == sum(s for s, _ in seen[0])  # the whole split
    assert len(seen) == 6 and seen[:3] == seen[3:]  # two runs of three epochs, the same
    assert any(s > 1 for s, _ in seen[0]) and seen[0] != seen[1]  # new batches every epoch
    assert len(seen[0]) > -(-sum(s for s, _ in seen[0]) // 8)  # more batches than by count
    # resumed = uninterrupted (the batches depend on the seed and the epoch only)
    train({**on, "train": {**on["train"], "epochs": 2}}, tmp_path / "res", progress=False)
    assert train(on, tmp_path / "res", resume=True, progress=False) == first
    assert seen[6:] == seen[:3]
    wa, wb = _weights(tmp_path / "on"), _weights(tmp_path / "res")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _history(run):
    """metrics.json without the timings."""
    rows = json.loads((run / "metrics.json").read_text())
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_eval_point_budget_changes_no_weight_and_no_metric_beyond_rounding(tiny_ds, tmp_path):
    """Validation and test run in eval mode: an event's outputs do not depend on its batch."""
    import numpy as np

    from hepx.data import load_dataset
    from hepx.data.batching import point_counts

    budget = int(np.median(point_counts(load_dataset(tiny_ds))))  # mostly single events
    base = train(_cfg(tiny_ds, epochs=2), tmp_path / "base", progress=False)
    got = train(_cfg(tiny_ds, epochs=2, eval_max_points_per_batch=budget), tmp_path / "ev")
    wa, wb = _weights(tmp_path / "base"), _weights(tmp_path / "ev")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # training untouched
    rows_a, rows_b = _history(tmp_path / "base"), _history(tmp_path / "ev")
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra.keys() == rb.keys()
        # (val_info_loss, a mean over each batch's points weighted by its events, is a batch
        # average: it moves with the batches)
        for key in (k for k in ra if k.startswith("val_") and k != "val_info_loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-6), key
    assert got.keys() == base.keys()
    for key, value in ((k, v) for k, v in base.items() if not k.endswith("info_loss")):
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.slow
def test_train_compile_trains_the_eager_model_deterministically(tiny_ds, tmp_path):
    """train.compile: the same seeded run twice is identical; against the eager run the losses
    differ at float rounding only; the checkpoint loads into an uncompiled model."""
    eager = train(_cfg(tiny_ds, epochs=2), tmp_path / "eager", progress=False)
    compiled = train(_cfg(tiny_ds, epochs=2, compile=True), tmp_path / "c1", progress=False)
    again = train(_cfg(tiny_ds, epochs=2, compile=True), tmp_path / "c2", progress=False)
    assert compiled == again
    losses = [
        [r["train_loss"] for r in json.loads((tmp_path / name / "metrics.json").read_text())]
        for name in ("eager", "c1")
    ]
    # two epochs of Adam amplify rounding (a different function differs by percents)
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    assert compiled.keys() == eager.keys()
    state = load_checkpoint(tmp_path / "c1" / "checkpoints" / "best.pt")
    assert state["config"]["train"]["compile"] is True
    reopened = model_from_checkpoint(state)
    assert not any("_orig_mod" in key for key in reopened.state_dict())
