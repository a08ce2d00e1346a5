"""The code paths of a GPU run, checked on the CPU: the benchmarks' device handling
(benchmarks/train_speed.py, benchmarks/scale.py), the graph backend's fallback where
torch-cluster has no CUDA kernels, and no tensor of the model's forward made on the default
device instead of the data's."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import scale  # noqa: E402
import train_speed  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

import hepx.data.graph as graph  # noqa: E402
from hepx.config import load_yaml, resolve_run_config, shipped_config_dir  # noqa: E402
from hepx.data import load_dataset  # noqa: E402
from hepx.errors import ConfigError  # noqa: E402
from hepx.models import build_model  # noqa: E402
from hepx.training import TrainStep  # noqa: E402

CPU = torch.device("cpu")
needs_cluster = pytest.mark.skipif(not graph.cluster_available(), reason="torch-cluster absent")


@pytest.fixture(autouse=True)
def _unwrap_graph_backend(monkeypatch):
    """Undo :func:`train_speed.backend_counts`'s wrapping after each test."""
    monkeypatch.setattr(graph, "_resolve_backend", graph._resolve_backend)


# --------------------------------------------------------------------------- --device


@pytest.mark.parametrize("script", ["train_speed.py", "scale.py"])
def test_device_cuda_without_cuda_stops_with_one_line(script):
    """Exit code 2 and one line on stderr, before any simulation (no GPU visible)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--device", "cuda"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: device 'cuda' requested")
    assert "CUDA is not available" in lines[0]
    assert res.stdout == ""


def test_check_device(monkeypatch, capsys):
    assert train_speed.check_device("cpu") == CPU
    for name, match in (("foo", "unknown device"), ("meta", "runs on cpu or cuda")):
        with pytest.raises(train_speed.DeviceError, match=match):
            train_speed.check_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        train_speed.main(["--device", "cuda:0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use device 'cpu'" in err[0]


# --------------------------------------------------------------------------- graph backend


def _sizes_batch(*sizes: int) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_auto_backend_falls_back_to_torch_where_torch_cluster_lacks_cuda(monkeypatch):
    big = _sizes_batch(250, 10)  # an event over the 200 points of "auto"
    cuda = torch.device("cuda")
    monkeypatch.setattr(graph, "_cluster_has_cuda", lambda: False)
    find_spec = graph.importlib.util.find_spec
    monkeypatch.setattr(  # torch-cluster importable, whether it is installed or not
        graph.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "torch_cluster" else find_spec(name, *a),
    )
    assert graph._resolve_backend("auto", big, cuda) == "torch"
    assert graph._resolve_backend("auto", big, CPU) == "cluster"
    assert not graph.cluster_available(cuda) and graph.cluster_available()
    with pytest.raises(ConfigError, match="torch_cluster has no cuda kernels"):
        graph._resolve_backend("cluster", big, cuda)
    assert graph._resolve_backend("torch", big, cuda) == "torch"
    monkeypatch.setattr(graph, "_cluster_has_cuda", lambda: True)
    assert graph._resolve_backend("auto", big, cuda) == "cluster"
    assert graph._resolve_backend("auto", _sizes_batch(150, 150), cuda) == "torch"
    assert not graph.cluster_available("mps")  # torch-cluster has no kernels there


def test_cuda_probe_reads_torch_cluster_build():
    if not graph.cluster_available():
        assert not graph.cluster_available("cuda")
        return
    graph._cluster_has_cuda.cache_clear()
    assert graph._cluster_has_cuda() == (torch.ops.torch_cluster.cuda_version() != -1)


def test_backend_counts_name_the_backend_that_ran():
    pos = torch.randn(260, 3, generator=torch.Generator().manual_seed(0))
    small = _sizes_batch(130, 130)
    train_speed.backend_counts(reset=True)
    graph.knn_graph(pos, 4, small)
    graph.radius_graph(pos, 0.5, small, backend="torch")
    assert train_speed.backend_counts() == {"torch": 2}
    assert train_speed.format_backends(train_speed.backend_counts(reset=True)) == "torch"
    assert train_speed.backend_counts() == {}
    if graph.cluster_available():
        graph.knn_graph(pos, 4, _sizes_batch(260))
        graph.knn_graph(pos, 4, small)
        counts = train_speed.backend_counts(reset=True)
        assert counts == {"cluster": 1, "torch": 1}
        assert train_speed.format_backends(counts) == "cluster 1 + torch 1"
    assert train_speed.format_backends({}) == "-"


# --------------------------------------------------------------------------- benchmarks on CPU


def test_train_speed_table_on_cpu(tau_dataset, acts_dataset):
    """Every method of one backbone, 1 timed step each, beside the plain baseline."""
    ds = {"tau3mu": load_dataset(tau_dataset), "actstrack": load_dataset(acts_dataset)}
    out = io.StringIO()
    rows = train_speed.run_table(ds, ["egnn"], 1, CPU, out=out)
    assert [(r["dataset"], r["method"]) for r in rows] == [
        (k, m) for k in ds for m in train_speed.METHODS
    ]
    assert all(r["eps"] > 0 and r["graphs"] == "torch" and r["gpu_mib"] is None for r in rows)
    assert rows[0]["ratio"] == rows[3]["ratio"] == 1.0
    text = out.getvalue().splitlines()
    assert "GPU MiB" not in text[0] and len(text) == 1 + len(rows)
    env = train_speed.describe_environment(CPU)
    assert env.startswith("device cpu") and f"torch {torch.__version__}" in env
    assert train_speed.peak_rss_mib() > 0 and train_speed.peak_gpu_mib(CPU) is None


def test_scale_local_mode_on_cpu(tau_lri_run, cms_ntuple, tmp_path):
    """The single-process baseline: ``device`` reaches score_files, the graphs are counted."""
    files = [shutil.copy(cms_ntuple, tmp_path / f"{n}.root") for n in ("a", "b")]
    files = [Path(f) for f in files]
    row = scale.local_mode(tau_lri_run, files, tmp_path / "explain", CPU)
    n_events = sum(o["events"] for o in row["manifest"]["outputs"])
    assert n_events > 0 and row["sec"] > 0
    (stats,) = row["stats"]
    assert stats["gpu"] is None and stats["rss"] > 0 and stats["graphs"].get("torch", 0) > 0
    _, events = scale.load_explained(tmp_path / "explain" / "local")
    assert scale.compare(events, events) == "yes"
    other = events[::-1]
    assert scale.compare(other, events).startswith("NO")
    nudged = scale.ak.with_field(events, events.prob + 1e-3, "prob")
    assert scale.compare(nudged, events).startswith("not bitwise; max |diff| prob 1.00e-03")
    row["identical"] = "(reference)"
    scale.print_table([row], n_events)


@pytest.mark.slow
def test_scale_main_on_cpu(tmp_path, capsys):
    """The whole benchmark, tiny: simulation, one-epoch run, local and one dask worker."""
    args = ["--files", "2", "--events", "100", "--workers", "1", "--device", "cpu"]
    scale.main([*args, "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith("device cpu")
    local = next(line for line in out.splitlines() if line.startswith("local "))
    dask = next(line for line in out.splitlines() if line.startswith("dask x1"))
    assert "torch" in local and "(reference)" in local
    assert "torch" in dask and dask.rstrip().endswith("yes")


# --------------------------------------------------------------------------- default device


def _configs():
    root = shipped_config_dir()
    return [
        pytest.param(p.parent.name, p.stem, id=f"{p.parent.name}/{p.stem}")
        for kind in ("tau3mu", "actstrack")
        for p in sorted((root / kind).glob("*.yaml"))
    ]


def _step_under_meta(kind: str, name: str, dataset: Path):
    """Forward, backward and hepx's predict of the shipped ``kind/name`` config on a batch of
    ``dataset``, with ``meta`` as torch's default device: the loss, the model (its grads)
    and the predictions."""
    from hepx.inference import predict

    ds = load_dataset(dataset)
    cfg = load_yaml(shipped_config_dir() / kind / f"{name}.yaml")
    cfg["dataset"]["path"] = "unused"
    cfg = resolve_run_config(cfg)
    torch.manual_seed(0)
    model = build_model(
        cfg["model"], pos_dim=ds.pos_dim, x_dim=ds.num_point_features, period=ds.meta["period"]
    )
    step = TrainStep(model, pred_coef=1.0, info_coef=cfg["train"]["info_loss_coef"]).train()
    batch = next(iter(DataLoader(ds, batch_size=16)))
    with torch.device("meta"):
        loss = step(batch)[0]
        loss.backward()
        pred = predict(model, [batch], device="cpu", lri=True)
    assert len(pred.logits) == batch.num_graphs
    return loss, model


@pytest.mark.parametrize(("kind", "name"), _configs())
def test_forward_makes_no_tensor_on_the_default_device(kind, name, tau_dataset, acts_dataset):
    """With ``meta`` as torch's default device, a tensor made without ``device=`` inside the
    forward (and backward, and hepx's predict) lands on ``meta``: mixing it with the CPU data
    raises, or the outputs end up on ``meta``. On a GPU such a tensor would be on the CPU."""
    loss, model = _step_under_meta(kind, name, tau_dataset if kind == "tau3mu" else acts_dataset)
    assert loss.device == CPU and torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.device == CPU for g in grads)


def test_meta_check_catches_a_tensor_made_without_device(monkeypatch, tau_dataset):
    """The check above fails on a forward that makes a tensor without ``device=``."""
    from hepx.models.backbones import base

    compute = base.EdgeGeometry.compute.__func__

    def leaky(cls, pos, edge_index, period=None):
        geom = compute(cls, pos, edge_index, period)
        geom.dist = geom.dist + torch.zeros(1)  # no device=: the default device
        return geom

    monkeypatch.setattr(base.EdgeGeometry, "compute", classmethod(leaky))
    with pytest.raises(RuntimeError, match="meta"):
        _step_under_meta("tau3mu", "plain_egnn", tau_dataset)


@needs_cluster
@pytest.mark.parametrize("period", [None, [None, 6.0, None]])
def test_cluster_backend_makes_no_tensor_on_the_default_device(period):
    pos = torch.rand(520, 3, generator=torch.Generator().manual_seed(1)) * 6
    batch = _sizes_batch(300, 220)
    want_knn = graph.knn_graph(pos, 6, batch, period=period, backend="cluster")
    want_r = graph.radius_graph(pos, 1.0, batch, period=period, backend="cluster")
    with torch.device("meta"):
        knn = graph.knn_graph(pos, 6, batch, period=period, backend="cluster")
        radius = graph.radius_graph(pos, 1.0, batch, period=period, backend="cluster")
        dense = graph.knn_graph(pos, 6, batch, period=period, backend="torch")
    assert knn.device == radius.device == dense.device == CPU
    assert torch.equal(knn, want_knn) and torch.equal(radius, want_r)
