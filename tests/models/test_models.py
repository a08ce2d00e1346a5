"""Tests of hepx.models: backbones, classifier, LRI-Bernoulli / LRI-Gaussian, build_model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal, kl_divergence
from torch_geometric.data import Batch, Data

from hepx.errors import CheckpointError, ConfigError, InputError
from hepx.explain import get_explainer
from hepx.models import (
    BACKBONES,
    GMTLin,
    GMTSam,
    LRIBernoulli,
    LRIGaussian,
    LRIOutput,
    PointCloudClassifier,
    bernoulli_kl,
    build_model,
    gaussian_kl,
    gaussian_noise,
    r_schedule,
)
from hepx.models.gmt import straight_through_bernoulli
from hepx.models.pointmask import PointMask, pointmask_kl
from hepx.training.selection import ModelSelection

torch.set_num_threads(1)
TWO_PI = 2 * math.pi
BACKBONE_NAMES = list(BACKBONES)
METHOD_NAMES = ["plain", "lri_bernoulli", "lri_gaussian", "gmt_lin", "gmt_sam", "pointmask"]


# ------------------------------------------------------------------------------------------
# tiny synthetic datasets
# ------------------------------------------------------------------------------------------


def make_batch(style: str, n_clouds: int = 32, seed: int = 0) -> Batch:
    """Label 1 = a tight cluster of 5 points is planted among uniform background points.

    style "acts": 3-D positions in mm-like units (no features); "tau": (eta, phi) with phi in
    (-pi, pi], one feature per point.
    """
    g = torch.Generator().manual_seed(seed)
    data = []
    for c in range(n_clouds):
        y = c % 2
        n_bg = 12 + int(torch.randint(0, 5, (1,), generator=g))
        if style == "acts":
            bg = (torch.rand(n_bg, 3, generator=g) * 2 - 1) * 500.0
            centre = (torch.rand(1, 3, generator=g) * 2 - 1) * 400.0
            extra = centre + 15.0 * torch.randn(5, 3, generator=g)
            x = torch.zeros(n_bg + 5, 0)
        else:
            eta = torch.rand(n_bg, generator=g) * 4 - 2
            phi = (torch.rand(n_bg, generator=g) * 2 - 1) * math.pi
            bg = torch.stack([eta, phi], dim=-1)
            centre = torch.stack(
                [
                    torch.rand(1, generator=g) * 3 - 1.5,
                    (torch.rand(1, generator=g) * 2 - 1) * math.pi,
                ],
                -1,
            )
            extra = centre + 0.05 * torch.randn(5, 2, generator=g)
            extra[:, 1] = torch.remainder(extra[:, 1] + math.pi, TWO_PI) - math.pi
            x = torch.rand(n_bg + 5, 1, generator=g)
        if not y:  # negatives: the extra points are background too (same point count)
            lo, hi = bg.min(0).values, bg.max(0).values
            extra = lo + (hi - lo) * torch.rand(5, bg.shape[1], generator=g)
        pos = torch.cat([bg, extra]).float()
        label = torch.cat([torch.zeros(n_bg), torch.full((5,), float(y))]).long()
        data.append(Data(x=x, pos=pos, y=torch.tensor([[float(y)]]), node_label=label))
    return Batch.from_data_list(data)


def small_config(backbone: str, method: str, style: str, **extra) -> dict:
    cfg = {
        "backbone": backbone,
        "method": method,
        "hidden_channels": 32,
        "num_layers": 2,
        "dropout": 0.1,
        "graph": {"kind": "knn", "k": 6, "backend": "torch"}
        if style == "acts"
        else {"kind": "radius", "r": 1.0, "max_num_neighbors": 32, "backend": "torch"},
        "pos_scale": 0.002 if style == "acts" else 1.0,
        "gaussian": {"pos_coef": 5.0},
    }
    cfg.update(extra)
    return cfg


def make_model(backbone: str, method: str, style: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    dims = {"acts": (3, 0, None), "tau": (2, 1, [None, TWO_PI])}[style]
    return build_model(
        small_config(backbone, method, style, **extra),
        pos_dim=dims[0],
        x_dim=dims[1],
        period=dims[2],
    )


def logits_of(model, batch: Batch, **kw) -> torch.Tensor:
    out = model(batch, **kw)
    return out.logits if isinstance(out, LRIOutput) else out


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_training_reduces_loss(backbone, method):
    style = "tau" if backbone == "point_transformer" else "acts"
    batch = make_batch(style, seed=1)
    model = make_model(backbone, method, style, seed=1)
    groups = model.parameter_groups()
    assert sum(len(g) for g in groups.values()) == len(list(model.parameters()))
    if method != "plain":
        assert set(groups) == {"classifier", "extractor"}
    opt = torch.optim.Adam([{"params": g} for g in groups.values()], lr=5e-3)

    losses = []
    torch.manual_seed(2)
    model.train()
    # GMT-sam's hard sampled masks drop about half the edges at the untrained extractor's
    # scores: a noisier gradient that needs more steps on this toy task
    for _ in range(90 if method == "gmt_sam" else 30):
        opt.zero_grad()
        out = model(batch)
        logits = out.logits if isinstance(out, LRIOutput) else out
        pred_loss = F.binary_cross_entropy_with_logits(logits, batch.y)
        loss = pred_loss + 0.1 * out.info_loss if isinstance(out, LRIOutput) else pred_loss
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
        losses.append(pred_loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    # PointMask's untrained mask shrinks every coordinate from the first step: a slower start
    assert last < (0.6 if method == "pointmask" else 0.5) * first, losses
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(logits_of(model, batch)).all()


@pytest.mark.parametrize("method", ["plain", "lri_bernoulli"])
def test_mean_pool_divides_the_sum_by_the_point_count(method):
    """model.pool mean: the head sees sum_i w_i h_i / n_points per cloud (PyG's
    global_mean_pool for unit weights), so a cloud's scale does not grow with its size."""
    from torch_geometric.nn import global_add_pool, global_mean_pool

    batch = make_batch("acts", n_clouds=6, seed=3)
    model = make_model("egnn", method, "acts", seed=0, pool="mean").eval()
    clf = model if method == "plain" else model.classifier
    h = torch.randn(
        batch.num_nodes, clf.hidden_channels, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        got = clf.readout(h, batch.batch, batch.num_graphs)
        expected = clf.head(global_mean_pool(h, batch.batch, size=batch.num_graphs))
        torch.testing.assert_close(got, expected)
        w = torch.rand(batch.num_nodes)
        counts = torch.bincount(batch.batch, minlength=batch.num_graphs).unsqueeze(-1)
        weighted = global_add_pool(h * w.unsqueeze(-1), batch.batch) / counts
        torch.testing.assert_close(clf.readout(h, batch.batch, 6, w), clf.head(weighted))
        # the whole model runs with it; the default stays the reference's add pool
        assert torch.isfinite(logits_of(model, batch)).all()
    default = make_model("egnn", "plain", "acts")
    assert default.pool == "add"
    with pytest.raises(ConfigError, match="pool"):
        make_model("egnn", "plain", "acts", pool="max")


# ------------------------------------------------------------------------------------------
# LRI pieces
# ------------------------------------------------------------------------------------------


def test_r_schedule_hand_computed():
    expected = {0: 0.9, 9: 0.9, 10: 0.8, 19: 0.8, 20: 0.7, 35: 0.6, 40: 0.5, 41: 0.5, 500: 0.5}
    for epoch, r in expected.items():
        assert r_schedule(epoch) == pytest.approx(r, abs=1e-12)
    assert r_schedule(25, final_r=0.7) == pytest.approx(0.7)
    assert r_schedule(35, final_r=0.7) == pytest.approx(0.7)
    assert r_schedule(7, init_r=0.8, decay_r=0.05, decay_interval=3) == pytest.approx(0.7)
    with pytest.raises(ConfigError):
        r_schedule(-1)


def test_bernoulli_kl_hand_formula():
    p = torch.tensor([0.3, 0.9, 0.5])
    r = 0.7
    hand = [
        0.3 * math.log(0.3 / 0.7) + 0.7 * math.log(0.7 / 0.3),
        0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3),
        0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3),
    ]
    assert torch.allclose(bernoulli_kl(p, r), torch.tensor(hand), atol=1e-6)
    assert bernoulli_kl(torch.tensor([0.7]), 0.7).abs().item() < 1e-7
    assert torch.isfinite(bernoulli_kl(torch.tensor([0.0, 1.0]), 0.5)).all()


def test_bernoulli_model_outputs():
    batch = make_batch("acts", n_clouds=6)
    model = make_model("dgcnn", "lri_bernoulli", "acts")
    assert isinstance(model, LRIBernoulli)
    assert model.set_epoch(20) == pytest.approx(0.7)
    model.eval()
    out = model(batch)
    n = batch.num_nodes
    assert out.logits.shape == (6, 1) and out.node_scores.shape == (n,)
    assert bool(((out.node_scores > 0) & (out.node_scores < 1)).all())
    assert torch.equal(out.node_mask, out.node_scores)  # eval: m = p, no sampling
    assert out.info_loss.item() == pytest.approx(bernoulli_kl(out.node_scores, 0.7).mean().item())
    out2 = model(batch, r=0.5)
    assert out2.info_loss.item() == pytest.approx(bernoulli_kl(out.node_scores, 0.5).mean().item())
    assert torch.equal(out2.logits, out.logits)  # deterministic eval
    # training mode samples a relaxed mask
    model.train()
    torch.manual_seed(0)
    a = model(batch)
    b = model(batch, stochastic=True)
    assert not torch.equal(a.node_mask, b.node_mask)
    assert bool(((a.node_mask > 0) & (a.node_mask < 1)).all())


@pytest.mark.parametrize("backbone", ["dgcnn", "egnn"])
def test_bernoulli_masks_messages_only_as_the_reference_and_the_pool_as_an_option(backbone):
    batch = make_batch("acts", n_clouds=4)
    ref = make_model(backbone, "lri_bernoulli", "acts").eval()
    clf = ref.classifier
    with torch.no_grad():
        out = ref(batch)
        p = out.node_scores
        ei = clf.build_graph(clf.scale_pos(batch.pos), batch.batch)
        # the reference: messages j -> i weighted p_i p_j, global add pool unweighted
        expected = clf(batch, edge_index=ei, edge_weight=p[ei[0]] * p[ei[1]])
        assert torch.allclose(out.logits, expected, atol=1e-5)
        variant = make_model(backbone, "lri_bernoulli", "acts", bernoulli={"mask_pool": True})
        variant.load_state_dict(ref.state_dict())
        got = variant.eval()(batch).logits
        # hepx's variant: the pool sum_i p_i h_i too
        assert torch.allclose(got, clf(batch, edge_index=ei, node_weight=p), atol=1e-5)
        assert not torch.allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("method", ["lri_bernoulli", "lri_gaussian"])
def test_running_statistics_come_from_the_prediction_pass(method):
    """The classifier runs twice per LRI training step (clean cloud for the extractor, then the
    masked / noised one); only the second pass may feed BatchNorm's running statistics."""
    batch = make_batch("acts", n_clouds=8)
    model = make_model("egnn", method, "acts").train()
    norm = model.classifier.backbone.norms[0]
    seen: list[torch.Tensor] = []
    norm.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    norm.reset_running_stats()
    norm.momentum = None  # cumulative average: after one step, exactly the batch mean
    out = model(batch)
    assert len(seen) == 2 and not torch.allclose(seen[0], seen[1])
    assert torch.allclose(norm.running_mean, seen[1].mean(0), atol=1e-5)
    assert int(norm.num_batches_tracked) == 1
    # the clean pass still normalises with its own batch statistics during training
    ref = torch.nn.functional.batch_norm(
        seen[0], None, None, norm.weight, norm.bias, training=True, eps=norm.eps
    )
    clean = model.classifier.backbone.norms[0](seen[0])
    assert torch.allclose(clean, ref, atol=1e-5)
    assert out.logits.shape == (8, 1)


@pytest.mark.parametrize("style", ["acts", "tau"])
def test_gaussian_sigma_and_kl(style):
    batch = make_batch(style, n_clouds=6)
    model = make_model("egnn", "lri_gaussian", style)
    assert isinstance(model, LRIGaussian)
    model.eval()
    out = model(batch)
    d = batch.pos.shape[1]
    sigma = out.sigma
    assert sigma.shape == (batch.num_nodes, d, d)
    assert torch.allclose(sigma, sigma.transpose(1, 2))
    assert bool((torch.linalg.eigvalsh(sigma) > 0).all())
    s64 = sigma.double()
    ref = kl_divergence(
        MultivariateNormal(torch.zeros(len(s64), d, dtype=torch.float64), covariance_matrix=s64),
        MultivariateNormal(
            torch.zeros(d, dtype=torch.float64), covariance_matrix=torch.eye(d, dtype=torch.float64)
        ),
    )
    assert torch.allclose(gaussian_kl(s64), ref, rtol=1e-6, atol=1e-8)
    assert torch.allclose(gaussian_kl(sigma).double(), ref, rtol=1e-4, atol=1e-5)
    assert out.info_loss.item() == pytest.approx(ref.mean().item(), rel=1e-4)
    assert torch.allclose(out.node_scores, -torch.linalg.det(sigma))
    # eval prediction = the prediction on the mean (clean) positions
    assert torch.allclose(out.logits, model.classifier(batch))
    torch.manual_seed(0)
    noisy = model(batch, stochastic=True)
    assert not torch.allclose(noisy.logits, out.logits)


def test_gaussian_noise_covariance():
    torch.manual_seed(0)
    d, n = 3, 40_000
    u = torch.randn(1, d, d).expand(n, d, d)
    scales = torch.tensor([[0.7, 0.2]]).expand(n, 2)
    eps = gaussian_noise(scales, u)
    sigma = 0.7 * u[0] @ u[0].T + 0.2 * torch.eye(d)
    emp = eps.T @ eps / n
    assert torch.allclose(emp, sigma, atol=0.05 * sigma.abs().max().item())


# ------------------------------------------------------------------------------------------
# symmetries
# ------------------------------------------------------------------------------------------


def random_orthogonal(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_egnn_invariant_under_rotation_translation(method):
    batch = make_batch("acts", n_clouds=8, seed=3)
    model = make_model("egnn", method, "acts", seed=3).eval()
    moved = batch.clone()
    moved.pos = batch.pos @ random_orthogonal(4).T + torch.tensor([120.0, -40.0, 300.0])
    with torch.no_grad():
        a, b = model(batch), model(moved)
    if isinstance(a, LRIOutput):
        assert torch.allclose(a.node_scores, b.node_scores, rtol=1e-3, atol=1e-5)
        a, b = a.logits, b.logits
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()


def permute_within_events(batch: Batch, seed: int) -> tuple[Batch, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.argsort(batch.batch.double() + 0.5 * torch.rand(batch.num_nodes, generator=g))
    out = batch.clone()
    out.x, out.pos, out.node_label = batch.x[perm], batch.pos[perm], batch.node_label[perm]
    out.batch = batch.batch[perm]
    assert torch.equal(out.batch, batch.batch)
    return out, perm


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_permutation_invariance(backbone, method):
    style = "tau" if backbone == "dgcnn" else "acts"
    batch = make_batch(style, n_clouds=6, seed=5)
    model = make_model(backbone, method, style, seed=5).eval()
    permuted, perm = permute_within_events(batch, 6)
    with torch.no_grad():
        a, b = model(batch), model(permuted)
    if isinstance(a, LRIOutput):
        assert torch.allclose(a.node_scores[perm], b.node_scores, rtol=1e-4, atol=1e-5)
        a, b = a.logits, b.logits
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_phi_shift_invariance_with_period(backbone):
    batch = make_batch("tau", n_clouds=8, seed=7)
    model = make_model(backbone, "plain", "tau", seed=7).eval()
    shifted = batch.clone()
    phi = batch.pos[:, 1] + 1.234
    shifted.pos = torch.stack(
        [batch.pos[:, 0], torch.remainder(phi + math.pi, TWO_PI) - math.pi], 1
    )
    with torch.no_grad():
        a, b = model(batch), model(shifted)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()
    # negative control: the same model without the period is not invariant
    torch.manual_seed(7)
    flat = build_model(small_config(backbone, "plain", "tau"), pos_dim=2, x_dim=1, period=None)
    flat.load_state_dict(model.state_dict())
    flat.eval()
    with torch.no_grad():
        assert not torch.allclose(flat(batch), flat(shifted), atol=1e-3)


def test_lri_scores_phi_shift_invariant():
    batch = make_batch("tau", n_clouds=4, seed=8)
    shifted = batch.clone()
    shifted.pos = batch.pos + torch.tensor([0.0, 2.0])  # unreduced angles are fine too
    for method in ("lri_bernoulli", "lri_gaussian"):
        model = make_model("point_transformer", method, "tau", seed=8).eval()
        with torch.no_grad():
            a, b = model(batch), model(shifted)
        assert torch.allclose(a.node_scores, b.node_scores, rtol=1e-3, atol=1e-5)
        assert torch.allclose(a.logits, b.logits, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------
# edge weights
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_zero_weight_removes_point(backbone):
    batch = make_batch("tau", n_clouds=4, seed=9)
    model = make_model(backbone, "plain", "tau", seed=9).eval()
    assert isinstance(model, PointCloudClassifier)
    p = 20  # a point of the second cloud
    edges = model.build_graph(model.scale_pos(batch.pos), batch.batch)
    moved = batch.clone()
    moved.x = batch.x.clone()
    moved.pos = batch.pos.clone()
    moved.x[p] += 3.0
    moved.pos[p] += torch.tensor([0.3, -0.4])
    weight = torch.ones(batch.num_nodes)
    weight[p] = 0.0
    with torch.no_grad():
        # classifier level: node weight -> edge weight m_i m_j and weighted pool
        a = model(batch, node_weight=weight, edge_index=edges)
        b = model(moved, node_weight=weight, edge_index=edges)
        assert torch.allclose(a, b, atol=1e-6)
        c = model(moved, node_weight=torch.ones_like(weight), edge_index=edges)
        assert not torch.allclose(a[1], c[1], atol=1e-4)  # sanity: with weight 1 it matters
        # backbone level: edge weights 0 on every edge touching p
        ew = ((edges[0] != p) & (edges[1] != p)).float()
        ha = model.embed(batch.x, batch.pos, batch.batch, edges, ew)
        hb = model.embed(moved.x, moved.pos, moved.batch, edges, ew)
        others = torch.arange(batch.num_nodes) != p
        assert torch.allclose(ha[others], hb[others], atol=1e-6)
    with pytest.raises(InputError, match="edge_index"):
        model(batch, edge_weight=torch.ones(edges.shape[1]))


def test_gradients_finite_and_embeddings_exposed():
    batch = make_batch("acts", n_clouds=4, seed=10)
    for backbone in BACKBONE_NAMES:
        model = make_model(backbone, "plain", "acts", seed=10).eval()
        pos = batch.pos.clone().requires_grad_(True)
        logits, h = model(batch.x, pos, batch.batch, return_embeddings=True)
        assert h.shape == (batch.num_nodes, 32)
        g_pos, g_h = torch.autograd.grad(logits.sum(), [pos, h])
        assert torch.isfinite(g_pos).all() and g_pos.abs().sum() > 0  # GradGeo
        assert torch.isfinite(g_h).all()  # GradCAM


# ------------------------------------------------------------------------------------------
# build_model
# ------------------------------------------------------------------------------------------


def test_build_model_validation():
    with pytest.raises(ConfigError, match=r"'hiden'.*allowed: .*hidden_channels"):
        build_model({"hiden": 64}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"'graph\.radius'.*allowed: kind"):
        build_model({"graph": {"radius": 1.0}}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"'num_layers' must be a positive integer.*'4'"):
        build_model({"num_layers": "4"}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"'graph\.loop' must be true or false"):
        build_model({"graph": {"loop": 1}}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"'backbone' must be one of dgcnn"):
        build_model({"backbone": "gcn"}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"'bernoulli\.final_r'"):
        build_model({"bernoulli": {"final_r": 1.5}}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match="period has 1 entries"):
        build_model({}, pos_dim=2, x_dim=1, period=[TWO_PI])


def test_build_model_roundtrip_and_dims_check():
    model = build_model(
        {"backbone": "egnn", "method": "lri_gaussian", "graph": {"k": 10}},
        pos_dim=3,
        x_dim=0,
    )
    cfg = model.config
    assert cfg["pos_dim"] == 3 and cfg["x_dim"] == 0 and cfg["period"] is None
    assert cfg["graph"]["k"] == 10 and cfg["graph"]["kind"] == "knn"
    again = build_model(cfg, pos_dim=3, x_dim=0)
    again.load_state_dict(model.state_dict())
    with pytest.raises(CheckpointError, match="pos_dim=3, x_dim=0 but the data has pos_dim=2"):
        build_model(cfg, pos_dim=2, x_dim=1, period=[None, TWO_PI])
    tau = build_model({"method": "lri_bernoulli"}, pos_dim=2, x_dim=1, period=[None, TWO_PI])
    assert tau.classifier.period == (None, TWO_PI)
    with pytest.raises(CheckpointError, match="period"):
        build_model(tau.config, pos_dim=2, x_dim=1, period=None)


def test_pos_scale_scales_period():
    model = build_model({"pos_scale": 0.5}, pos_dim=2, x_dim=0, period=[None, TWO_PI])
    assert model.graph.period == (None, math.pi)
    batch = make_batch("tau", n_clouds=2)
    with pytest.raises(InputError, match="x has 1 features per point, model expects 2"):
        build_model({}, pos_dim=2, x_dim=2)(batch)
    with pytest.raises(InputError, match="pos has 2 coordinates, model expects 3"):
        build_model({}, pos_dim=3, x_dim=1)(batch)


def test_unit_direction_representation():
    """unit_direction keeps only each hit's direction from the origin: radial scaling of the
    points changes nothing, and the resolved config records the option."""
    from hepx.models import build_model

    torch.manual_seed(0)
    model = build_model(
        {"backbone": "dgcnn", "unit_direction": True, "hidden_channels": 8, "num_layers": 2},
        pos_dim=3,
        x_dim=0,
    ).eval()
    assert model.config["unit_direction"] is True
    pos = torch.randn(40, 3)
    batch = torch.repeat_interleave(torch.arange(4), 10)
    x = torch.zeros(40, 0)
    radial = torch.rand(40, 1) * 5 + 0.5
    with torch.no_grad():
        a = model(x, pos, batch)
        b = model(x, pos * radial, batch)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_graph_space_direction_picks_neighbours_by_direction_only():
    """space 'direction': the edge set is the kNN graph of the unit directions (a brute-force
    reference here), radial scaling of the points leaves it unchanged, and the layers still see
    the positions (unlike unit_direction, the output changes under that scaling)."""
    torch.manual_seed(0)
    pos = torch.randn(60, 3)
    batch = torch.repeat_interleave(torch.arange(3), 20)
    radial = torch.rand(60, 1) * 5 + 0.5
    model = build_model(
        {"graph": {"k": 4, "space": "direction"}, "hidden_channels": 8, "num_layers": 2},
        pos_dim=3,
        x_dim=0,
    ).eval()
    assert model.config["graph"]["space"] == "direction"
    edges = model.build_graph(model.scale_pos(pos), batch)

    unit = pos / pos.norm(dim=1, keepdim=True)
    expected = set()
    for i in range(60):
        same = (batch == batch[i]).nonzero().flatten()
        d = (unit[same] - unit[i]).pow(2).sum(1)
        for j in same[torch.argsort(d, stable=True)[:4]].tolist():
            expected.add((j, i))
    assert set(map(tuple, edges.t().tolist())) == expected
    scaled = model.build_graph(model.scale_pos(pos * radial), batch)
    assert set(map(tuple, scaled.t().tolist())) == expected

    x = torch.zeros(60, 0)
    with torch.no_grad():
        a, b = model(x, pos, batch), model(x, pos * radial, batch)
    assert not torch.allclose(a, b, atol=1e-3)
    # the default searches neighbours among the positions
    plain = build_model({"graph": {"k": 4}}, pos_dim=3, x_dim=0)
    assert plain.config["graph"]["space"] == "position"
    assert set(map(tuple, plain.build_graph(pos, batch).t().tolist())) != expected


def test_graph_space_is_validated():
    with pytest.raises(ConfigError, match=r"'graph\.space' must be one of position, direction"):
        build_model({"graph": {"space": "angle"}}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"space 'direction' needs Cartesian.*period"):
        build_model(
            {"graph": {"kind": "radius", "space": "direction"}},
            pos_dim=2,
            x_dim=1,
            period=[None, TWO_PI],
        )


# ------------------------------------------------------------------------------------------
# beam frame
# ------------------------------------------------------------------------------------------


def rotate_about_z(pos: torch.Tensor, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=pos.dtype)
    return pos @ rot.T


def test_beam_frame_basis_and_edge_components():
    from hepx.models.backbones.base import EdgeGeometry, beam_frame

    pos = torch.tensor([[3.0, 4.0, 1.0], [0.0, -2.0, 0.5], [0.0, 0.0, 7.0]], dtype=torch.float64)
    basis = beam_frame(pos)
    torch.testing.assert_close(basis @ basis.transpose(1, 2), torch.eye(3).expand(3, 3, 3).double())
    torch.testing.assert_close(
        basis[0], torch.tensor([[0.6, 0.8, 0], [-0.8, 0.6, 0], [0, 0, 1.0]]).double()
    )
    torch.testing.assert_close(basis[2], torch.eye(3).double())  # on the axis: Cartesian axes
    # an edge from (3, 4, 1) to a point further out along the same radius, 2 up in z
    p = torch.tensor([[3.0, 4.0, 1.0], [6.0, 8.0, 3.0]], dtype=torch.float64)
    ei = torch.tensor([[0], [1]])  # j = 0 -> i = 1
    geom = EdgeGeometry.compute(p, ei).in_beam_frame(p, ei)
    torch.testing.assert_close(geom.delta, torch.tensor([[5.0, 0.0, 2.0]]).double())
    torch.testing.assert_close(geom.curvature, torch.zeros(1, 1).double())  # straight from beam


def test_beam_curvature_is_the_circle_through_the_beam_line():
    """Hits on a transverse circle through the origin of radius R: every pair gets kappa = 1/R,
    with the sign of the bending direction (hand computation of the Menger curvature)."""
    from hepx.models.backbones.base import CURVATURE_SCALE, EdgeGeometry

    radius = 4.0  # metres: pT = 0.3 * 2 T * 4 m = 2.4 GeV
    phi0 = 0.7
    centre = radius * torch.tensor([math.cos(phi0), math.sin(phi0)], dtype=torch.float64)
    # angles on the circle measured from its centre; angle = phi0 + pi is the origin
    ang = phi0 + math.pi + torch.tensor([0.05, 0.1, 0.17, 0.25], dtype=torch.float64)
    xy = centre + radius * torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    pos = torch.cat([xy, torch.linspace(-0.3, 0.9, 4, dtype=torch.float64)[:, None]], -1)
    assert abs(float((centre - 0).norm()) - radius) < 1e-12
    ei = torch.tensor([[0, 0, 1, 2, 3], [1, 3, 2, 3, 0]])
    geom = EdgeGeometry.compute(pos, ei).in_beam_frame(pos, ei)
    kappa = torch.sinh(geom.curvature.squeeze(-1)) * CURVATURE_SCALE
    torch.testing.assert_close(kappa.abs(), torch.full((5,), 1 / radius, dtype=torch.float64))
    # mirror image (opposite charge) flips the sign
    mirrored = pos * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    kappa_m = torch.sinh(EdgeGeometry.compute(mirrored, ei).in_beam_frame(mirrored, ei).curvature)
    torch.testing.assert_close(kappa_m.squeeze(-1) * CURVATURE_SCALE, -kappa)


@pytest.mark.parametrize("method", METHOD_NAMES)
@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_beam_frame_model_invariant_about_beam_axis_only(backbone, method):
    batch = make_batch("acts", n_clouds=6, seed=11)
    model = make_model(backbone, method, "acts", seed=11, frame="beam").eval()
    assert model.config["frame"] == "beam"
    rotated = batch.clone()
    rotated.pos = rotate_about_z(batch.pos, 2.1)
    tilted = batch.clone()
    tilted.pos = batch.pos @ random_orthogonal(5).T
    with torch.no_grad():
        a, b, c = model(batch), model(rotated), model(tilted)
    if isinstance(a, LRIOutput):
        torch.testing.assert_close(a.node_scores, b.node_scores, rtol=1e-3, atol=1e-4)
        a, b, c = a.logits, b.logits, c.logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - c).abs().max() > 1e-3  # not invariant under a generic rotation


def test_beam_frame_validation():
    with pytest.raises(ConfigError, match=r"'frame' must be one of global, beam"):
        build_model({"frame": "cylinder"}, pos_dim=3, x_dim=0)
    with pytest.raises(ConfigError, match=r"frame 'beam' needs 3-D.*pos_dim = 2"):
        build_model({"frame": "beam"}, pos_dim=2, x_dim=1, period=[None, TWO_PI])
    with pytest.raises(ConfigError, match=r"frame 'beam' needs Cartesian.*period"):
        build_model({"frame": "beam"}, pos_dim=3, x_dim=0, period=[None, TWO_PI, None])


def test_dropout_matches_torch_distribution():
    from hepx.models.backbones.base import Dropout

    drop = Dropout(0.2)
    x = torch.ones(200_000, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    # kept elements scaled by 1 / (1 - p); dropped fraction ~ p (binomial sd 0.0009)
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1.25))
    assert abs(1 - kept.float().mean().item() - 0.2) < 0.005
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y / d x = the scaled mask
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ConfigError, match="dropout must lie in"):
        Dropout(1.0)


@pytest.mark.parametrize(
    ("conv_name", "aggr"),
    [("egnn", "add"), ("egnn", "mean"), ("dgcnn", "mean"), ("dgcnn", "add"), ("dgcnn", "max")],
)
def test_message_mlp_matches_its_definition_on_concatenated_edges(conv_name, aggr):
    """The layers project nodes before gathering; a reference on ``cat([h_i, h_j(-h_i), e])``
    aggregated with an independent scatter of the chosen reduction."""
    from torch_geometric.utils import scatter

    from hepx.models.backbones.dgcnn import EdgeConv
    from hepx.models.backbones.egnn import EGNNConv

    torch.manual_seed(0)
    n, c, e_dim = 30, 8, 4
    conv = (EGNNConv if conv_name == "egnn" else EdgeConv)(c, e_dim, aggr=aggr).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for mod in conv.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    x = torch.randn(n, c)
    edge_index = torch.randint(0, n, (2, 120))
    edge_attr = torch.randn(120, e_dim)
    weight = torch.rand(120)
    j, i = edge_index
    if conv_name == "egnn":
        msg = conv.edge_nn(torch.cat([x[i], x[j], edge_attr], -1)) * weight[:, None]
        agg = scatter(msg, i, dim=0, dim_size=n, reduce="sum" if aggr == "add" else aggr)
        ref = conv.node_nn(torch.cat([x, agg], -1))
    else:
        msg = conv.nn(torch.cat([x[i], x[j] - x[i], edge_attr], -1)) * weight[:, None]
        ref = scatter(msg, i, dim=0, dim_size=n, reduce="sum" if aggr == "add" else aggr)
    got = conv(x, edge_index, edge_attr, weight)
    assert torch.allclose(got, ref, atol=1e-5)


def test_aggr_config_reaches_the_layers_and_is_validated():
    from hepx.models.factory import build_model

    def aggrs(cfg):
        model = build_model(cfg, pos_dim=2, x_dim=1)
        return {conv.aggr for conv in model.backbone.convs}

    assert aggrs({"backbone": "dgcnn"}) == {"mean"}  # the LRI reference's default
    assert aggrs({"backbone": "egnn"}) == {"add"}
    assert aggrs({"backbone": "dgcnn", "aggr": "add"}) == {"add"}
    assert aggrs({"backbone": "dgcnn", "aggr": "max"}) == {"max"}
    assert aggrs({"backbone": "egnn", "aggr": "mean"}) == {"mean"}
    with pytest.raises(ConfigError, match="not available for PointTransformer"):
        build_model({"backbone": "point_transformer", "aggr": "add"}, pos_dim=2, x_dim=1)
    with pytest.raises(ConfigError, match="allowed: add, mean"):
        build_model({"backbone": "egnn", "aggr": "max"}, pos_dim=2, x_dim=1)
    with pytest.raises(
        ConfigError, match="model config 'aggr' must be null or one of mean, add, max, got 'sum'"
    ):
        build_model({"aggr": "sum"}, pos_dim=2, x_dim=1)


# ------------------------------------------------------------------------------------------
# GMT (Chen et al. 2024): where the mask enters, hard samples, the info-loss factor, selection
# ------------------------------------------------------------------------------------------


def _record_edge_weights(model):
    seen = []
    for layer, conv in enumerate(model.classifier.backbone.convs):
        conv.register_forward_hook(lambda m, args, out, layer=layer: seen.append((layer, args[3])))
    return seen


@pytest.mark.parametrize("backbone", ["egnn", "dgcnn"])
def test_gmt_lin_masks_the_first_layer_only(backbone):
    batch = make_batch("acts", n_clouds=4)
    model = make_model(backbone, "gmt_lin", "acts").eval()
    assert isinstance(model, GMTLin)
    seen = _record_edge_weights(model)
    with torch.no_grad():
        out = model(batch)
    masked = seen[-2:]  # the masked pass (after the clean pass that feeds the extractor)
    assert masked[0][0] == 0 and masked[0][1] is not None and masked[1][1] is None
    ei = model.classifier.build_graph(model.classifier.scale_pos(batch.pos), batch.batch)
    p = out.node_scores
    assert torch.allclose(masked[0][1], p[ei[0]] * p[ei[1]])
    # with the same weights, LRI-Bernoulli masks every layer and predicts otherwise
    lri = make_model(backbone, "lri_bernoulli", "acts").eval()
    lri.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(lri(batch).node_scores, p)
        assert not torch.allclose(lri(batch).logits, out.logits, atol=1e-4)


def test_straight_through_samples_are_hard_with_the_gradient_of_the_probability():
    prob = torch.tensor([0.0, 0.2, 0.7, 1.0], requires_grad=True)
    torch.manual_seed(0)
    b = straight_through_bernoulli(prob)
    assert torch.allclose(b, b.round(), atol=1e-6) and b[0] == 0 and b[3] == 1
    (b * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert torch.equal(prob.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_gmt_sam_trains_on_hard_masks_and_predicts_with_the_expected_one():
    batch = make_batch("acts", n_clouds=6)
    model = make_model("egnn", "gmt_sam", "acts", gmt={"sampling_trials": 3})
    assert isinstance(model, GMTSam) and model.sampling_trials == 3
    seen = _record_edge_weights(model)
    model.train()
    torch.manual_seed(0)
    out = model(batch)
    weights = [w for _, w in seen[2:] if w is not None]  # after the clean pass's 2 layers
    assert len(weights) == 3 * 2  # 3 draws x 2 layers, the same draw in both layers
    for w in weights:
        assert torch.allclose(w, w.round(), atol=1e-5)  # 0 or 1
    assert not torch.equal(weights[0], weights[2])  # the draws differ
    F.binary_cross_entropy_with_logits(out.logits, batch.y).backward()
    grads = [p.grad for p in model.extractor.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # evaluation: deterministic, the expected mask p_i p_j in every layer (as LRI-Bernoulli)
    model.eval()
    lri = make_model("egnn", "lri_bernoulli", "acts")
    lri.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(model(batch).logits, lri.eval()(batch).logits)
    got = get_explainer("gmt_sam")(model, batch).scores
    with torch.no_grad():
        assert torch.equal(got, model(batch).node_scores)
    with pytest.raises(Exception, match="needs a trained GMTSam"):
        get_explainer("gmt_sam")(lri, batch)


def test_gmt_sam_draws_a_new_node_mask_for_every_trial(monkeypatch):
    """As GMT's code (mode 55): every trial samples the relaxed node mask anew and its edges
    from it; the hard edges are replaced by their probabilities here to see which mask fed
    which draw."""
    import hepx.models.gmt as gmt

    batch = make_batch("acts", n_clouds=4)
    model = make_model("egnn", "gmt_sam", "acts", gmt={"sampling_trials": 3}).train()
    monkeypatch.setattr(gmt, "straight_through_bernoulli", lambda prob: prob)
    masks, draw = [], model.draw_mask
    monkeypatch.setattr(
        model, "draw_mask", lambda logit, sample: masks.append(draw(logit, sample)) or masks[-1]
    )
    seen = _record_edge_weights(model)
    torch.manual_seed(0)
    out = model(batch)
    assert len(masks) == 3 and not torch.equal(masks[0], masks[1])
    ei = model.classifier.build_graph(model.classifier.scale_pos(batch.pos), batch.batch)
    weights = [w for layer, w in seen[2:] if layer == 0]
    for mask, w in zip(masks, weights, strict=True):
        assert torch.allclose(w, mask[ei[0]] * mask[ei[1]])
    assert torch.equal(out.node_mask, masks[0])


def test_gmt_sam_information_loss_factor_and_a_prior_starting_at_one():
    batch = make_batch("acts", n_clouds=4)
    model = make_model(
        "egnn",
        "gmt_sam",
        "acts",
        bernoulli={"init_r": 1.0, "final_r": 0.7, "decay_interval": 5},
        gmt={"early_info_factor": 2.0},
    ).eval()
    plain = LRIBernoulli.forward
    for epoch, factor in ((0, 2.0), (4, 2.0), (5, 1.0), (30, 1.0)):
        r = model.set_epoch(epoch)
        with torch.no_grad():
            got = model(batch).info_loss
            base = plain(model, batch).info_loss
        assert math.isfinite(float(got)), epoch
        assert float(got) == pytest.approx(factor * float(base)), epoch
        assert r == pytest.approx(max(1.0 - 0.1 * (epoch // 5), 0.7))


def test_selection_by_accuracy():
    sel = ModelSelection(metric="pred_acc")
    assert sel.offer({"pred_auc": 0.9, "pred_acc": 0.7, "loss": 1.0}, 0, "lri")
    assert not sel.offer({"pred_auc": 0.99, "pred_acc": 0.6, "loss": 0.1}, 1, "lri")
    assert sel.offer({"pred_auc": 0.5, "pred_acc": 0.7, "loss": 0.5}, 2, "lri")  # tie: lower loss
    assert sel.epoch == 2


# ------------------------------------------------------------------------------------------
# PointMask (jointly trained, as the LRI paper's baseline)
# ------------------------------------------------------------------------------------------


def test_pointmask_kl_by_hand():
    mu = torch.tensor([0.0, 1.0, 2.0])
    log_var = torch.tensor([0.0, math.log(2.0), 0.0])
    batch = torch.tensor([0, 0, 1])
    # per point 0.5 (mu^2 + var - 1 - log var): 0; 0.5 (1 + 2 - 1 - ln 2); 0.5 * 4 = 2
    expected = ((0.5 * (2.0 - math.log(2.0))) + 2.0) / 2
    assert float(pointmask_kl(mu, log_var, batch, 2)) == pytest.approx(expected)


@pytest.mark.parametrize("backbone", ["egnn", "dgcnn"])
def test_pointmask_scales_the_coordinates_by_its_thresholded_mask(backbone):
    batch = make_batch("acts", n_clouds=4)
    model = make_model(backbone, "pointmask", "acts", pointmask={"t": 0.3}).eval()
    assert isinstance(model, PointMask) and model.t == 0.3
    clf = model.classifier
    with torch.no_grad():
        out = model(batch)
        frame = clf.scale_pos(batch.pos)
        edges = clf.build_graph(frame, batch.batch)
        mu = model.extractor(model.encoder(batch.x, frame, edges, batch.batch))[:, 0]
        m = (torch.sigmoid(mu) - 0.3).clamp(min=0.0, max=1.0)  # evaluation: z = mu
        assert torch.allclose(out.node_scores, m) and torch.equal(out.node_mask, out.node_scores)
        assert (m == 0).any() or (m < 0.7).all()  # the threshold t is subtracted
        expected = clf(batch.x, batch.pos * m.unsqueeze(-1), batch.batch)
        assert torch.allclose(out.logits, expected, atol=1e-5)
        assert torch.equal(get_explainer("pointmask")(model, batch).scores, out.node_scores)
    # training samples z = mu + sigma eps; the encoder is the classifier's own copy
    model.train()
    torch.manual_seed(0)
    a, b = model(batch), model(batch)
    assert not torch.equal(a.node_mask, b.node_mask)
    assert model.encoder is not clf.backbone
    a.logits.sum().backward()
    assert any(p.grad is not None for p in model.extractor.parameters())
