"""hepx.run: a trained run directory, its checkpoints (and their migration), its dataset."""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch_geometric.loader import DataLoader

from hepx.data import load_dataset
from hepx.data.dataset import read_manifest
from hepx.errors import CheckpointError, InputError
from hepx.kinds import get_kind
from hepx.models import build_model
from hepx.models.backbones.base import Dropout
from hepx.run import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    RunLayout,
    TrainedRun,
    check_compatible,
    dataset_record,
    load_checkpoint,
    model_from_checkpoint,
    resolve_dataset_path,
    save_checkpoint,
)
from hepx.training import train


def _copy(run: Path, tmp_path: Path) -> Path:
    """A private copy of a session run (session fixtures are read-only)."""
    return Path(shutil.copytree(run, tmp_path / run.name))


def _edit_checkpoint(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def _event_ids(ds) -> list[int]:
    return [int(d.event_id) for d in ds]


# --------------------------------------------------------------------------- a session run


def test_open_a_session_run(acts_lri_gaussian_run, acts_dataset):
    run = TrainedRun.open(acts_lri_gaussian_run)
    assert run.kind is get_kind("actstrack") and run.method == "lri_gaussian"
    assert run.reader_options == {}  # converted with the reader's defaults
    assert run.checkpoint == "best" and run.checkpoint_path == RunLayout(
        acts_lri_gaussian_run
    ).checkpoint("best")
    test_metrics = json.loads((acts_lri_gaussian_run / "test_metrics.json").read_text())
    assert run.epoch == test_metrics["selected_epoch"] == 0 and run.test_metrics() == test_metrics
    # the resolved config, as config.yaml has it, with the absolute dataset path hepx train records
    assert run.config == yaml.safe_load((acts_lri_gaussian_run / "config.yaml").read_text())
    assert (
        run.dataset_path == acts_dataset.resolve()
        and Path(run.config["dataset"]["path"]).is_absolute()
    )
    assert run.state["dataset"] == dataset_record(read_manifest(acts_dataset))
    assert "actstrack" in repr(run) and "lri_gaussian egnn" in repr(run)
    last = TrainedRun.open(acts_lri_gaussian_run, checkpoint="last")
    assert last.epoch == 0 and last.state["optimizer_state"] is not None


def test_model_is_the_checkpoints_model(tau_lri_run, tau_dataset):
    run = TrainedRun.open(tau_lri_run)
    model = run.model()
    assert not model.training
    ref = model_from_checkpoint(load_checkpoint(tau_lri_run / "checkpoints" / "best.pt")).eval()
    batch = next(iter(DataLoader(load_dataset(tau_dataset), batch_size=16)))
    with torch.no_grad():
        got, want = model(batch), ref(batch)
    assert torch.equal(got.logits, want.logits)
    assert torch.equal(got.node_scores, want.node_scores)


def test_splits_are_the_split_of_training(tau_lri_run, tau_dataset):
    run = TrainedRun.open(tau_lri_run)
    splits = run.splits()
    ds = load_dataset(tau_dataset)
    want = ds.split(run.config["dataset"]["split"], seed=run.config["dataset"]["split_seed"])
    assert set(splits) == {"train", "val", "test"}
    for name in splits:
        assert _event_ids(splits[name]) == _event_ids(want[name]), name
    assert len(splits["test"]) == run.test_metrics()["n_test"]  # what training tested on
    every = [i for part in splits.values() for i in _event_ids(part)]
    assert sorted(every) == sorted(_event_ids(ds))  # disjoint and complete
    assert splits["test"].meta["path"] == str(tau_dataset.resolve())


def test_open_refuses_what_is_not_a_run(tmp_path, tau_lri_run, acts_dataset):
    with pytest.raises(CheckpointError, match="no such run directory"):
        TrainedRun.open(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match=r"no checkpoints/best\.pt; expected a run directory"):
        TrainedRun.open(tmp_path)
    with pytest.raises(CheckpointError, match=r"no checkpoints/best_live\.pt"):
        TrainedRun.open(tau_lri_run, checkpoint="best_live")
    run = TrainedRun.open(tau_lri_run)
    with pytest.raises(InputError, match=r"trained on a 'tau3mu' dataset but .* holds 'actstrack'"):
        run.dataset(acts_dataset)
    with pytest.raises(InputError, match="cannot load its dataset"):
        run.dataset(tmp_path / "gone")


# --------------------------------------------------------------------------- checkpoints


def test_save_and_load_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = {"backbone": "egnn", "method": "plain", "hidden_channels": 8, "num_layers": 2}
    model = build_model(cfg, pos_dim=2, x_dim=1)
    record = {"kind": "tau3mu", "reader_options": {"min_hits": 2}, "coords": ["eta", "phi"]}
    config = {"model": model.config, "dataset": {"path": "x"}, "train": {}}
    path = tmp_path / "c.pt"
    save_checkpoint(path, model, config=config, epoch=4, dataset=record, extra={"a": [1, 2]})
    state = load_checkpoint(path)
    assert state["format"] == CHECKPOINT_FORMAT and state["version"] == CHECKPOINT_VERSION == 4
    assert state["epoch"] == 4 and state["dataset"] == record and state["extra"] == {"a": [1, 2]}
    assert state["optimizer_state"] is None and "ema_state" not in state
    assert state["config"]["train"]["epochs"] == 100  # train defaults filled in on load
    loaded = model_from_checkpoint(state)
    ref = model.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in loaded.state_dict().items())
    _edit_checkpoint(path, lambda s: s.update(version=CHECKPOINT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer than this hepx supports"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def _as_version_2(state, *, kind=None, path=None):
    """What a version-2 checkpoint held: no dataset record (the run config as it was)."""
    state["version"] = 2
    del state["dataset"]
    state["config"]["dataset"]["kind"] = kind  # a config that did not name the kind
    if path is not None:
        state["config"]["dataset"]["path"] = str(path)


def test_version_2_checkpoint_gets_its_dataset_from_the_manifest(
    tau_lri_run, tau_dataset, tmp_path
):
    run_dir = _copy(tau_lri_run, tmp_path)
    _edit_checkpoint(run_dir / "checkpoints" / "best.pt", _as_version_2)
    run = TrainedRun.open(run_dir)
    assert run.state["version"] == CHECKPOINT_VERSION
    assert run.kind is get_kind("tau3mu")  # from the manifest: the config names none
    assert run.reader_options == {"min_signal_hits": 1}  # the manifest's, not the defaults
    assert run.state["dataset"] == dataset_record(read_manifest(tau_dataset))
    assert len(run.splits()["test"]) == run.test_metrics()["n_test"]
    # the dataset is gone: the kind still follows from the recorded dimensions
    gone = _copy(tau_lri_run, tmp_path / "gone")
    _edit_checkpoint(
        gone / "checkpoints" / "best.pt", lambda s: _as_version_2(s, path=tmp_path / "no_ds")
    )
    run = TrainedRun.open(gone)
    assert run.kind is get_kind("tau3mu") and run.reader_options == {}
    assert run.model() is not None


def _message_dropouts(model):
    return [m.p for m in model.classifier.backbone.convs.modules() if isinstance(m, Dropout)]


def test_version_1_checkpoint_has_message_dropout_equal_to_dropout(tmp_path):
    """Version-1 models were built with message dropout = model.dropout (there was no key)."""
    torch.manual_seed(0)
    cfg = {"backbone": "dgcnn", "method": "lri_bernoulli", "hidden_channels": 8, "num_layers": 2}
    old = build_model({**cfg, "dropout": 0.3, "message_dropout": 0.3}, pos_dim=3, x_dim=0)
    model_cfg = {k: v for k, v in old.config.items() if k != "message_dropout"}
    layout = RunLayout(tmp_path / "v1")
    save_checkpoint(
        layout.checkpoint("best"),
        old,
        config={"model": model_cfg, "dataset": {"path": str(tmp_path / "no_ds")}, "train": {}},
        epoch=7,
        dataset={},
    )
    _edit_checkpoint(layout.checkpoint("best"), lambda s: (s.update(version=1), s.pop("dataset")))
    run = TrainedRun.open(layout.directory)
    assert run.config["model"]["message_dropout"] == 0.3 and run.epoch == 7
    assert run.kind is get_kind("actstrack")  # from the dimensions (3, 0)
    model = run.model()
    assert _message_dropouts(model) == _message_dropouts(old) and 0.3 in _message_dropouts(model)
    ref = old.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in model.state_dict().items())


def test_version_3_lri_bernoulli_keeps_the_mask_weighted_pool_it_was_trained_with(tmp_path):
    """Before version 4, LRI-Bernoulli also weighted the pool by the mask; the default is now
    the reference's unweighted pool, so an old run must keep its own."""
    torch.manual_seed(0)
    cfg = {"backbone": "dgcnn", "method": "lri_bernoulli", "hidden_channels": 8, "num_layers": 2}
    model = build_model(cfg, pos_dim=3, x_dim=0)
    assert model.mask_pool is False  # the reference's default
    model_cfg = copy.deepcopy(model.config)
    del model_cfg["bernoulli"]["mask_pool"]
    layout = RunLayout(tmp_path / "v3")
    config = {"model": model_cfg, "dataset": {"path": str(tmp_path / "no_ds")}, "train": {}}
    save_checkpoint(layout.checkpoint("best"), model, config=config, epoch=2, dataset={})
    _edit_checkpoint(layout.checkpoint("best"), lambda s: s.update(version=3))
    run = TrainedRun.open(layout.directory)
    assert run.config["model"]["bernoulli"]["mask_pool"] is True
    assert run.model().mask_pool is True
    # a plain run of version 3 gets the default, so that it still matches today's config
    plain = build_model({**cfg, "method": "plain"}, pos_dim=3, x_dim=0)
    plain_cfg = copy.deepcopy(plain.config)
    del plain_cfg["bernoulli"]["mask_pool"]
    layout = RunLayout(tmp_path / "v3plain")
    config = {"model": plain_cfg, "dataset": {"path": str(tmp_path / "no_ds")}, "train": {}}
    save_checkpoint(layout.checkpoint("best"), plain, config=config, epoch=2, dataset={})
    _edit_checkpoint(layout.checkpoint("best"), lambda s: s.update(version=3))
    assert TrainedRun.open(layout.directory).config["model"] == plain.config


# --------------------------------------------------------------------------- the dataset


def test_relative_dataset_paths_are_relative_to_the_working_directory(
    tau_lri_run, tau_dataset, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset_path("data/x") == tmp_path / "data" / "x"
    assert resolve_dataset_path(tau_dataset) == tau_dataset
    # a hand-written run config with a relative path: resolved where the run is used
    run_dir = _copy(tau_lri_run, tmp_path)
    _edit_checkpoint(
        run_dir / "checkpoints" / "best.pt", lambda s: s["config"]["dataset"].update(path="ds")
    )
    monkeypatch.chdir(tau_dataset.parent)
    run = TrainedRun.open(run_dir)
    assert run.dataset_path == tau_dataset and len(run.dataset()) == len(load_dataset(tau_dataset))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="cannot load its dataset"):
        TrainedRun.open(run_dir).dataset()


def test_train_records_the_dataset_path_absolute(tau_dataset, tmp_path, monkeypatch):
    from tiny_runs import tiny_config

    monkeypatch.chdir(tau_dataset.parent)
    cfg = tiny_config("ds", "tau3mu", "plain")  # relative to the working directory
    cfg["train"]["max_batches_per_epoch"] = 1
    train(cfg, tmp_path / "run", progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["dataset"]["path"] == str(tau_dataset)
    monkeypatch.chdir(tmp_path)  # the run does not depend on where it is used from
    assert TrainedRun.open(tmp_path / "run").dataset_path == tau_dataset


def test_check_compatible_refuses_other_dimensions(
    acts_plain_run, tau_lri_run, acts_dataset, generic_dataset
):
    acts = TrainedRun.open(acts_plain_run).config["model"]
    tau = TrainedRun.open(tau_lri_run).config["model"]
    acts_meta = read_manifest(acts_dataset)
    check_compatible(acts, acts_meta, what="ok")  # its own data
    tau_meta = {"pos_dim": 2, "x_dim": 1, "period": [None, 6.283185307179586]}
    check_compatible(tau, tau_meta, what="ok")
    with pytest.raises(
        CheckpointError,
        match=r"^run r and data d: the model has pos_dim=3, x_dim=0, period=None; "
        r"the data have pos_dim=2, x_dim=1, period=\[None, 6\.28",
    ):
        check_compatible(acts, tau_meta, what="run r and data d")
    with pytest.raises(CheckpointError, match=r"pos_dim=2, x_dim=1.*pos_dim=3, x_dim=0"):
        check_compatible(tau, acts_meta, what="x")
    with pytest.raises(CheckpointError, match=r"period=\[None, 6\.28.*period=\[None, 3\.0\]"):
        check_compatible(tau, {**tau_meta, "period": [None, 3.0]}, what="x")
    # a dataset without a period (not periodic) is no conflict
    check_compatible(tau, {**tau_meta, "period": [None, None]}, what="ok")
    # the generic example has a point feature the ActsTrack model does not know
    with pytest.raises(CheckpointError, match=r"pos_dim=3, x_dim=0, .* pos_dim=3, x_dim=1"):
        check_compatible(acts, read_manifest(generic_dataset), what="x")


def test_a_recorded_dataset_path_is_never_followed_silently(
    tau_lri_run, tau_dataset, tmp_path, caplog
):
    run = TrainedRun.open(tau_lri_run)
    with caplog.at_level("INFO", logger="hepx.run"):
        run.dataset()
    assert f"using its recorded dataset {tau_dataset.resolve()}" in caplog.text
    # the checkpoint points at another dataset of the same kind: used, with a warning
    other = tmp_path / "other"
    shutil.copytree(tau_dataset, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["fingerprint"] = "sha256:" + "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    run.config["dataset"]["path"] = str(other)
    caplog.clear()
    with caplog.at_level("INFO", logger="hepx.run"):
        run.dataset()
    assert "is not the one it was trained on" in caplog.text
    with caplog.at_level("INFO", logger="hepx.run"):
        caplog.clear()
        run.dataset(tau_dataset)  # a path the user gave: nothing to say
    assert caplog.text == ""
