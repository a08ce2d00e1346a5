"""Tests of hepx.models.compile and of the layers' last Linear after the aggregation."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.models import build_model, compile_layers
from hepx.models.backbones.base import project_aggregated
from hepx.models.backbones.dgcnn import EdgeConv
from hepx.models.backbones.egnn import EGNNConv


def _graph(n: int = 40, e: int = 160, e_dim: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n - 3, (2, e), generator=gen)  # the last 3 nodes get no edge
    return edge_index, torch.randn(e, e_dim, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("aggr", ["add", "mean"])
@pytest.mark.parametrize("weighted", [True, False])
def test_project_aggregated_is_the_aggregated_affine_map(aggr, weighted):
    """sum/mean_j w_ij (W r_ij + b) by hand, nodes without edges included (zero rows)."""
    torch.manual_seed(0)
    n, e = 12, 50
    index = torch.randint(0, n - 2, (e,))
    r = torch.randn(e, 5, dtype=torch.float64)
    w = torch.rand(e, dtype=torch.float64) if weighted else None
    last = torch.nn.Linear(5, 3).double()
    ones = torch.ones(e, dtype=torch.float64)
    weight = w if weighted else ones
    expected = torch.zeros(n, 3, dtype=torch.float64)
    count = torch.zeros(n, dtype=torch.float64)
    for k in range(e):  # the definition, edge by edge
        expected[index[k]] += weight[k] * (last.weight @ r[k] + last.bias)
        count[index[k]] += 1
    if aggr == "mean":
        expected = expected / count.clamp(min=1).unsqueeze(-1)
    hidden = scatter(
        r * weight[:, None], index, dim=0, dim_size=n, reduce=aggr.replace("add", "sum")
    )
    got = project_aggregated(hidden, last, index, w, aggr)
    torch.testing.assert_close(got, expected)
    assert torch.equal(got[-2:], torch.zeros(2, 3, dtype=torch.float64))


def test_project_aggregated_refuses_the_max():
    with pytest.raises(ValueError, match="does not commute"):
        project_aggregated(
            torch.zeros(2, 3), torch.nn.Linear(3, 3), torch.zeros(4).long(), None, "max"
        )


@pytest.mark.parametrize(
    ("conv_name", "aggr"), [("egnn", "add"), ("egnn", "mean"), ("dgcnn", "mean"), ("dgcnn", "add")]
)
def test_training_mode_layers_match_the_concatenated_definition_with_gradients(conv_name, aggr):
    """Training mode (batch statistics, message dropout with the same draws): outputs and
    gradients in float64 equal the textbook message MLP on concatenated edges, aggregated
    after its last Linear."""
    c, e_dim = 6, 4
    edge_index, edge_attr = _graph(e_dim=e_dim)
    n = 40
    torch.manual_seed(0)
    cls = EGNNConv if conv_name == "egnn" else EdgeConv
    conv = cls(c, e_dim, dropout=0.3, aggr=aggr).double().train()
    x = torch.randn(n, c, dtype=torch.float64, requires_grad=True)
    weight = torch.rand(edge_index.shape[1], dtype=torch.float64)
    j, i = edge_index
    reduce = "sum" if aggr == "add" else aggr

    torch.manual_seed(7)
    if conv_name == "egnn":
        msg = conv.edge_nn(torch.cat([x[i], x[j], edge_attr], -1)) * weight[:, None]
        agg = scatter(msg, i, dim=0, dim_size=n, reduce=reduce)
        ref = conv.node_nn(torch.cat([x, agg], -1))
    else:
        msg = conv.nn(torch.cat([x[i], x[j] - x[i], edge_attr], -1)) * weight[:, None]
        ref = scatter(msg, i, dim=0, dim_size=n, reduce=reduce)
    probe = torch.randn_like(ref)
    ref_grads = torch.autograd.grad((ref * probe).sum(), [x, *conv.parameters()])

    torch.manual_seed(7)  # the same dropout draws: one rand_like of the same [E, C] shape
    got = conv(x, edge_index, edge_attr, weight)
    got_grads = torch.autograd.grad((got * probe).sum(), [x, *conv.parameters()])
    torch.testing.assert_close(got, ref)
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_compile_layers_keeps_the_state_dict_keys_and_says_how_many():
    model = build_model(
        {"backbone": "egnn", "method": "lri_bernoulli", "num_layers": 3}, pos_dim=3, x_dim=0
    )
    before = list(model.state_dict())
    assert compile_layers(model) == 3
    assert list(model.state_dict()) == before


def test_compile_layers_says_in_one_line_when_torch_compile_cannot_run(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    model = build_model({"backbone": "egnn"}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError) as err:
        compile_layers(model)
    message = str(err.value)
    assert "\n" not in message
    assert "No working C++ compiler found" in message and "train.compile false" in message


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["egnn", "dgcnn", "point_transformer"])
def test_compiled_layers_compute_the_eager_model_in_float64(backbone):
    """The compiled model's logits and gradients equal the eager model's (float64, where
    rounding cannot hide a different function), on batches of two sizes (dynamic shapes)."""
    torch.manual_seed(0)
    cfg = {"backbone": backbone, "method": "lri_bernoulli", "hidden_channels": 8, "num_layers": 2}
    eager = build_model(cfg, pos_dim=3, x_dim=1).double().train()
    compiled = build_model(cfg, pos_dim=3, x_dim=1).double().train()
    compiled.load_state_dict(eager.state_dict())
    compile_layers(compiled)
    for n_events, seed in ((3, 1), (5, 2)):
        gen = torch.Generator().manual_seed(seed)
        n = 30 * n_events
        x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
        pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        batch = torch.arange(n_events).repeat_interleave(30)
        outputs = []
        for model in (eager, compiled):
            model.zero_grad()
            torch.manual_seed(seed)
            out = model(x, pos, batch)
            (out.logits.sum() + out.info_loss).backward()
            grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
            outputs.append((out.logits.detach(), grads))
        torch.testing.assert_close(outputs[1][0], outputs[0][0])
        for a, b in zip(outputs[1][1], outputs[0][1], strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("conv_name", "aggr"), [("egnn", "add"), ("egnn", "mean"), ("dgcnn", "mean")]
)
def test_explain_mode_masks_the_whole_message(conv_name, aggr):
    """PyG's explain mode (PGExplainer) multiplies every message by its edge mask: the layer
    then applies the last Linear per edge, so the mask scales ``W r + b``, bias included."""
    from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

    c, e_dim, n = 6, 4, 40
    edge_index, edge_attr = _graph(e_dim=e_dim)
    torch.manual_seed(0)
    conv = (EGNNConv if conv_name == "egnn" else EdgeConv)(c, e_dim, aggr=aggr).double().eval()
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(torch.randn_like(p))  # a bias far from zero
    x = torch.randn(n, c, dtype=torch.float64)
    weight = torch.rand(edge_index.shape[1], dtype=torch.float64)
    mask = torch.rand(edge_index.shape[1], dtype=torch.float64)
    j, i = edge_index
    reduce = "sum" if aggr == "add" else aggr
    if conv_name == "egnn":
        msg = conv.edge_nn(torch.cat([x[i], x[j], edge_attr], -1)) * (weight * mask)[:, None]
        ref = conv.node_nn(torch.cat([x, scatter(msg, i, dim=0, dim_size=n, reduce=reduce)], -1))
    else:
        msg = conv.nn(torch.cat([x[i], x[j] - x[i], edge_attr], -1)) * (weight * mask)[:, None]
        ref = scatter(msg, i, dim=0, dim_size=n, reduce=reduce)
    set_masks(conv, mask, edge_index, apply_sigmoid=False)
    try:
        got = conv(x, edge_index, edge_attr, weight)
    finally:
        clear_masks(conv)
    torch.testing.assert_close(got, ref)
