"""Post-hoc explainers: shapes, discrimination on a hand-built model, IG completeness, sanity
checks, registry errors and the torch_geometric.explain adapter."""

import math

import pytest
import torch
import torch.nn.functional as F
from explain_toys import ToyClassifier, random_batch, toy_batch
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.explain import (
    ExplainerAlgorithm,
    PointExplanation,
    available_methods,
    get_explainer,
    registry,
)
from hepx.explain.algorithm.base import PointInputs
from hepx.explain.algorithm.gradients import integrated_gradients, path_baseline, point_score
from hepx.explain.metric.sanity import model_perturbation, model_randomisation
from hepx.models import build_model

FAST = {
    "bernmask": {"iterations": 30},
    "ig": {"n_steps": 16},
    "ggig": {"m": 6, "steps": 3},
    "gnnexplainer": {"epochs": 10},
    "pgexplainer": {"epochs": 2},
    "captum_ig": {"n_steps": 8},
}
POST_HOC = [
    "gradcam",
    "gradgeo",
    "bernmask",
    "bernmask_p",
    "pointmask_posthoc",
    "ig",
    "ggig",
    "gnnexplainer",
    "pgexplainer",
    "captum_saliency",
    "captum_input_x_gradient",
    "captum_ig",
    "captum_guided_backprop",
]


def tiny(backbone="dgcnn", pos_dim=3, x_dim=0, period=None, method="plain", seed=0, **cfg):
    torch.manual_seed(seed)
    model = build_model(
        {"backbone": backbone, "method": method, "hidden_channels": 8, "num_layers": 2, **cfg},
        pos_dim=pos_dim,
        x_dim=x_dim,
        period=period,
    )
    return model.eval()


def make(name):
    return get_explainer(name, **FAST.get(name, {}))


def test_registry_names_and_unknown():
    own = {"lri_bernoulli", "lri_gaussian", "gmt_lin", "gmt_sam", "pointmask"}
    assert set(available_methods()) == set(POST_HOC) | own
    with pytest.raises(ConfigError, match=r"known methods: .*gradcam.*lri_gaussian"):
        get_explainer("shap")
    with pytest.raises(ConfigError, match="bad options"):
        get_explainer("ig", n_stepz=3)
    assert registry.POST_HOC == tuple(POST_HOC)
    assert available_methods()[-5:] == list(registry.SELF_INTERPRETABLE)


def test_register_explainer_function_and_class(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))  # restored after the test
    b = toy_batch()
    registry.register_explainer("x_flag", lambda model, batch: batch.x[:, 0] * 2)
    assert "x_flag" in available_methods()
    assert available_methods()[-5:] == list(registry.SELF_INTERPRETABLE)
    explanation = get_explainer("x_flag")(ToyClassifier(), b)
    assert isinstance(explanation, PointExplanation) and explanation.method == "x_flag"
    assert torch.equal(explanation.scores, b.x[:, 0] * 2)
    with pytest.raises(ConfigError, match="bad options"):
        get_explainer("x_flag", k=3)

    class Ones(ExplainerAlgorithm):
        name = "ones"

        def explain(self, model, data, inp):
            return torch.ones(inp.num_points)

    registry.register_explainer("ones", Ones)
    assert torch.equal(get_explainer("ones")(ToyClassifier(), b).scores, torch.ones(b.num_nodes))
    with pytest.raises(ConfigError, match="must be an algorithm class or a function"):
        registry.register_explainer("bad", 3)
    # names, algorithms and functions all resolve to an algorithm; None stays None
    assert registry.resolve_explainer(None) is None
    assert isinstance(registry.resolve_explainer("gradcam"), ExplainerAlgorithm)
    ones = Ones()
    assert registry.resolve_explainer(ones) is ones
    assert registry.resolve_explainer(len).name == "len"


@pytest.mark.parametrize(
    "setting",
    [
        {"backbone": "dgcnn"},
        {"backbone": "egnn"},
        {"backbone": "dgcnn", "pos_dim": 2, "x_dim": 1, "periodic": True},
    ],
)
def test_every_explainer_gives_finite_point_scores(setting):
    setting = dict(setting)
    periodic = setting.pop("periodic", False)
    pos_dim, x_dim = setting.pop("pos_dim", 3), setting.pop("x_dim", 0)
    period = [None, 2 * math.pi] if periodic else None
    scale = 1.0 if periodic else 100.0
    model = tiny(pos_dim=pos_dim, x_dim=x_dim, period=period, pos_scale=1 / scale, **setting)
    b = random_batch(dim=pos_dim, x_dim=x_dim, scale=scale, periodic=periodic)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in POST_HOC:
        e = make(name)
        if e.requires_fit:
            e.fit(model, [b], epochs=2)
        explanation = e(model, b)
        assert isinstance(explanation, PointExplanation), name
        assert explanation.method == name and explanation.options == dict(e.options()), name
        assert torch.equal(explanation.batch, b.batch), name
        s = explanation.scores
        assert s.shape == (b.num_nodes,), name
        assert torch.isfinite(s).all(), name
        assert not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model stays frozen


@pytest.mark.parametrize("method", ["lri_bernoulli", "lri_gaussian"])
def test_lri_scores_and_wrong_model(method):
    model = tiny(method=method, pos_scale=0.01)
    b = random_batch()
    s = get_explainer(method)(model, b).scores
    assert s.shape == (b.num_nodes,) and torch.isfinite(s).all()
    with pytest.raises(ConfigError, match="needs a trained"):
        get_explainer(method)(tiny(), b)


@pytest.mark.parametrize("name", ["gradcam", "gradgeo", "ig", "ggig", "bernmask"])
def test_methods_find_the_points_the_logit_depends_on(name):
    model = ToyClassifier()
    b = toy_batch()
    s = make(name)(model, b).scores
    flag = b.x[:, 0] > 0
    if name == "bernmask":
        # a sufficient subset: a flagged point with tiny |p|^2 may be dropped by the size penalty
        from sklearn.metrics import roc_auc_score

        assert roc_auc_score(flag.numpy(), s.numpy()) > 0.85
        assert (s[~flag] < 0.2).all()
        return
    # every flagged point outranks every unflagged point of its cloud
    for g in range(b.num_graphs):
        m = b.batch == g
        assert s[m & flag].min() > s[m & ~flag].max(), name


@pytest.mark.parametrize("backbone", ["dgcnn", "egnn"])
def test_gradcam_is_taken_at_the_last_convolution_as_in_the_reference(backbone):
    model = tiny(backbone, pos_scale=0.01)
    b = random_batch()
    ei = model.build_graph(model.scale_pos(b.pos), b.batch)
    # the reference hooks the last convolution's rectified output a, before the residual add:
    # its gradient through the whole model times a, summed over channels
    seen = []
    hook = model.backbone.norms[-1].register_forward_hook(
        lambda m, i, out: seen.append(out) or out.retain_grad()
    )
    with torch.enable_grad():
        logits, h = model(b.x, b.pos, b.batch, edge_index=ei, return_embeddings=True)
        h.retain_grad()
        logits.sum().backward()
    hook.remove()
    expected = (seen[-1].grad * torch.relu(seen[-1])).sum(-1)
    got = get_explainer("gradcam")(model, b).scores
    assert torch.allclose(got, expected.detach(), atol=1e-6)
    # not the summed embedding h_L = h_(L-1) + a
    assert not torch.allclose(got, (h.grad * h).sum(-1).detach(), atol=1e-3)


def test_bernmask_starts_from_the_reference_initialisation():
    # Adam with lr 0 leaves the logits where they start: N(1, std^2), std = sqrt(2) sqrt(1 / N)
    model = tiny("dgcnn", pos_scale=0.01)
    b = random_batch()
    n = b.num_nodes
    got = get_explainer("bernmask", iterations=1, lr=0.0, seed=5)(model, b).scores
    z = torch.randn(n, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(got, torch.sigmoid(1.0 + math.sqrt(2.0) * math.sqrt(2.0 / (2 * n)) * z))


@pytest.mark.parametrize("mask_pool", [False, True])
def test_bernmask_optimises_the_reference_objective(mask_pool):
    """Three Adam steps on the reference loss, written out here: soft target sigmoid(f(x)),
    messages weighted m_i m_j (and the pool by m only in the variant), means over the batch."""
    model = tiny("dgcnn", pos_scale=0.01)
    b = random_batch()
    ei = model.build_graph(model.scale_pos(b.pos), b.batch)
    size_coef, ent_coef = 0.1, 0.01
    algo = get_explainer(
        "bernmask",
        iterations=3,
        size_coef=size_coef,
        ent_coef=ent_coef,
        seed=2,
        mask_pool=mask_pool,
    )
    logit = algo.initial_logits(b.num_nodes).requires_grad_(True)
    opt = torch.optim.Adam([logit], lr=0.1)
    with torch.no_grad():
        target = torch.sigmoid(model(b.x, b.pos, b.batch, edge_index=ei))
    for _ in range(3):
        m = torch.sigmoid(logit)
        pool = {"node_weight": m} if mask_pool else {"edge_weight": m[ei[0]] * m[ei[1]]}
        out = model(b.x, b.pos, b.batch, edge_index=ei, **pool)
        ent = -m * torch.log(m + 1e-10) - (1 - m) * torch.log(1 - m + 1e-10)
        loss = F.binary_cross_entropy_with_logits(out, target) + size_coef * m.mean()
        loss = loss + ent_coef * ent.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    got = algo(model, b).scores
    assert torch.allclose(got, torch.sigmoid(logit.detach()), atol=1e-5)


def test_bernmask_p_has_the_reference_extractor_and_loss():
    algo = get_explainer("bernmask_p", size_coef=0.5, ent_coef=2.0)
    net = algo._make_net(8)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 8), (8, 1)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net) == 2
    assert [m.p for m in net if hasattr(m, "p")] == [0.2, 0.2]
    # loss by hand: p = sigmoid(a) = (1/2, 1/2, 1/2 | 3/4); the size term is the mean of p (not
    # of the sampled mask), the entropy a mean per sample, then over samples
    a = torch.tensor([[0.0], [0.0], [0.0], [math.log(3.0)]])
    batch = torch.tensor([0, 0, 0, 1])
    out, target = torch.tensor([[0.0], [2.0]]), torch.tensor([[0.5], [0.9]])
    sampled = torch.tensor([0.9, 0.1, 0.2, 0.3])  # must not enter the loss
    bce = -(0.5 * math.log(0.5) + 0.5 * math.log(0.5))
    s2 = 1 / (1 + math.exp(-2.0))
    bce = (bce - (0.9 * math.log(s2) + 0.1 * math.log(1 - s2))) / 2
    h_half, h_3q = math.log(2.0), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = bce + 0.5 * (1.5 + 0.75) / 4 + 2.0 * (h_half + h_3q) / 2
    got = algo._loss(out, target, a, sampled, batch)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_bernmask_p_keeps_the_epoch_of_best_validation_auc(monkeypatch):
    model = tiny("dgcnn", pos_scale=0.01)
    b = random_batch()
    algo = get_explainer("bernmask_p")
    scores = iter([(0.6, -1.0), (0.8, -2.0), (0.8, -1.5), (0.7, 0.0)])  # ties: lower loss wins
    states = []

    def scripted(self, *args):
        states.append({k: v.clone() for k, v in self.net.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(type(algo), "_validate", scripted)
    algo.fit(model, [b], epochs=4, valid_loader=[b])
    assert algo.selected_epoch == 2
    kept = algo.net.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in states[2].items())
    assert not all(torch.equal(kept[k], v) for k, v in states[3].items())


def test_bernmask_p_validation_tie_breaker_is_the_prediction_loss():
    # the reference breaks AUC ties on the mean prediction loss alone (its loss_dict["pred"]),
    # not on the size and entropy terms: with the mask saturated at 1 the masked prediction is
    # the clean one, so that loss is the binary entropy of the model's own probability
    model = tiny("dgcnn", pos_scale=0.01)
    b = random_batch()
    algo = get_explainer("bernmask_p", size_coef=100.0, ent_coef=100.0)
    algo.fit(model, [b], epochs=1)
    with torch.no_grad():
        algo.net[-1].bias.fill_(60.0)
    _, neg_loss = algo._validate(model, [b, b], torch.device("cpu"), None, None)
    with torch.no_grad():
        p = torch.sigmoid(model(b.clone()).view(-1))
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    assert -neg_loss == pytest.approx(float(entropy), rel=1e-4, abs=1e-6)


def test_ig_completeness_egnn_and_periodic():
    b = random_batch(sizes=(6, 9, 5), dim=3, scale=1.0)
    model = tiny("egnn")
    attr, delta = integrated_gradients(model, b, n_steps=256, method="riemann_trapezoid")
    total = scatter(attr.sum(-1), b.batch, reduce="sum")
    assert torch.allclose(total, delta, atol=2e-3 * max(1.0, float(delta.abs().max())))
    # features and a periodic axis (baseline = circular mean of phi)
    b2 = random_batch(sizes=(6, 9), dim=2, x_dim=1, scale=1.0, periodic=True)
    model2 = tiny("egnn", pos_dim=2, x_dim=1, period=[None, 2 * math.pi])
    attr2, delta2 = integrated_gradients(model2, b2, n_steps=256, method="riemann_trapezoid")
    assert attr2.shape == (b2.num_nodes, 3)
    total2 = scatter(attr2.sum(-1), b2.batch, reduce="sum")
    assert torch.allclose(total2, delta2, atol=5e-3 * max(1.0, float(delta2.abs().max())))


def test_path_baselines_by_hand():
    pos = torch.tensor([[1.0, 3.0], [3.0, -3.0], [2.0, 0.5], [-2.0, 0.5], [0.0, 0.5]])
    inp = PointInputs(None, pos, torch.tensor([0, 0, 1, 1, 1]), 2)
    period = [None, 2 * math.pi]
    # phi 3 and -3 straddle the wrap: their circular mean is pi, not 0
    origin = path_baseline(inp, period, "origin")
    assert torch.allclose(origin[:, 0], torch.zeros(5))
    assert torch.allclose(origin[:2, 1].abs(), torch.full((2,), math.pi))
    assert torch.allclose(origin[2:, 1], torch.full((3,), 0.5))
    centroid = path_baseline(inp, period, "centroid")
    assert torch.allclose(centroid[:, 0], torch.tensor([2.0, 2.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(centroid[:, 1], origin[:, 1])
    with pytest.raises(ConfigError, match=r"unknown IG baseline 'mean'.*centroid"):
        path_baseline(inp, period, "mean")
    for name in ("ig", "ggig"):
        with pytest.raises(ConfigError, match="unknown IG baseline"):
            get_explainer(name, baseline="mean")


def test_ig_centroid_baseline_completeness_and_translation_invariance():
    b = random_batch(sizes=(6, 9, 5), dim=3, scale=1.0)
    model = tiny("egnn")  # global frame: distances only, so f is translation invariant
    attr, delta = integrated_gradients(
        model, b, n_steps=256, method="riemann_trapezoid", baseline="centroid"
    )
    # delta = f(x) - f(every point of a sample at its centroid), graph of the real input kept
    centre = scatter(b.pos, b.batch, dim=0, reduce="mean")[b.batch]
    ei = model.build_graph(model.scale_pos(b.pos), b.batch)
    model.eval()
    with torch.no_grad():
        f_x = model(b.x, b.pos, b.batch, edge_index=ei).view(-1)
        f_b = model(b.x, centre, b.batch, edge_index=ei).view(-1)
    assert torch.allclose(delta, f_x - f_b, atol=1e-5)
    total = scatter(attr.sum(-1), b.batch, reduce="sum")
    assert torch.allclose(total, delta, atol=2e-3 * max(1.0, float(delta.abs().max())))
    # a translated event gets the same scores from the centroid path, not from the origin path
    moved = b.clone()
    moved.pos = b.pos + torch.tensor([5.0, -3.0, 2.0])
    for kind, same in (("centroid", True), ("origin", False)):
        ig = get_explainer("ig", n_steps=16, baseline=kind)
        close = torch.allclose(ig(model, b).scores, ig(model, moved).scores, rtol=1e-3, atol=1e-5)
        assert close == same, kind


def test_point_score_by_hand():
    grad = torch.tensor([[3.0, 4.0, 0.0, 2.0], [0.0, 0.0, 1.0, -1.0]])
    disp = torch.tensor([[1.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 3.0]])
    # position block as one vector (|g| |d|), features one by one (|g_f d_f|)
    assert point_score(grad, disp, 3).tolist() == [5.0 * 1.0 + 1.0, 1.0 * 2.0 + 3.0]
    assert point_score(grad, disp, 3, "sum").tolist() == [3.0 + 1.0, -3.0]
    assert point_score(grad, disp, 3, "abs").tolist() == [4.0, 3.0]
    assert point_score(grad, disp, 3, "abs_sum").tolist() == [4.0, 3.0]
    with pytest.raises(ConfigError, match=r"unknown point score 'bogus'.*magnitude"):
        point_score(grad, disp, 3, "bogus")
    for name in ("ig", "ggig"):
        with pytest.raises(ConfigError, match="unknown point score"):
            get_explainer(name, score="bogus")


class TangentialToy(ToyClassifier):
    """``logit = sum_i x_i (u_i . p_i)`` with ``u_i`` perpendicular to the real ``p_i`` (a
    quarter turn about z): constant zero along IG's straight path from the origin, yet the
    logit moves as soon as a flagged point moves sideways."""

    def __init__(self, pos: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer(
            "u", torch.stack([-pos[:, 1], pos[:, 0], torch.zeros_like(pos[:, 0])], 1)
        )

    def embed(self, x, pos, batch, edge_index, edge_weight=None):
        u = self.u.repeat(pos.shape[0] // self.u.shape[0], 1)  # IG replicates the batch
        return torch.stack([x[:, 0] * (u * pos).sum(-1), torch.zeros_like(x[:, 0])], dim=-1)


def test_ig_magnitude_sees_the_gradient_across_the_radial_path():
    b = toy_batch(seed=4)
    model = TangentialToy(b.pos)
    flag = b.x[:, 0]
    signed = get_explainer("ig", n_steps=8, score="sum")(model, b).scores
    assert torch.allclose(signed, torch.zeros_like(signed), atol=1e-5)
    # path-averaged gradient: int_0^1 alpha x_i u_i d alpha = x_i u_i / 2, exact for Gauss-Legendre
    rho = b.pos[:, :2].norm(dim=1)
    expected = 0.5 * flag * rho * b.pos.norm(dim=1)
    got = get_explainer("ig", n_steps=8)(model, b).scores
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    ggig = get_explainer("ggig", m=4, steps=2)(model, b).scores
    # GGIG's side steps also move the flag channel of unflagged points a little
    assert ggig[flag > 0].min() > ggig[flag == 0].max()


def test_ig_matches_captum_one_step_per_internal_batch():
    captum = pytest.importorskip("captum.attr")
    b = random_batch(sizes=(7,), dim=3, scale=1.0)
    model = tiny("egnn")
    ei = model.build_graph(model.scale_pos(b.pos), b.batch)
    ig = captum.IntegratedGradients(lambda p: model(None, p, b.batch, edge_index=ei).view(-1))
    ref = ig.attribute(
        b.pos, torch.zeros_like(b.pos), n_steps=20, internal_batch_size=b.num_nodes
    )  # = one path step per internal batch (Captum counts points as examples)
    ours, _ = integrated_gradients(model, b, n_steps=20)
    assert torch.allclose(ours, ref.float(), atol=1e-5)


def test_sanity_checks_move_the_right_way():
    torch.manual_seed(0)
    model = tiny("dgcnn", pos_scale=0.01)
    b = random_batch(sizes=(20, 25, 18, 22))
    e = get_explainer("gradgeo")
    rnd = model_randomisation(e, model, b, mode="cascading", seed=1)
    assert len(rnd["stages"]) == 4  # head, 2 layers, node encoder
    per = model_perturbation(e, model, b, noise=0.01, seed=1)
    assert per["spearman"] > 0.9
    assert rnd["spearman"] < per["spearman"] - 0.3
    assert abs(per["acc_perturbed"] - per["acc"]) <= 0.01 + 1e-9
    full = model_randomisation(e, model, b, mode="full", seed=1)
    assert full["spearman"] < 0.7


def test_pyg_explainer_adapter():
    from sklearn.metrics import roc_auc_score
    from torch_geometric.explain import Explainer

    from hepx.explain.pyg import HepxAlgorithm, PyGModel

    b = toy_batch()
    model = ToyClassifier()
    for name in ["gradgeo", "ig"]:
        explainer = Explainer(
            model=PyGModel(model),
            algorithm=HepxAlgorithm(name, **FAST.get(name, {})),
            explanation_type="model",
            node_mask_type="object",
            model_config=dict(mode="binary_classification", task_level="graph", return_type="raw"),
        )
        expl = explainer(b.x, PyGModel.no_edges(b), pos=b.pos, batch=b.batch)
        assert expl.node_mask.shape == (b.num_nodes, 1)
        direct = make(name)(model, b).scores
        assert torch.allclose(expl.node_mask.view(-1), direct)
        assert roc_auc_score(b.node_label.numpy(), expl.node_mask.view(-1).numpy()) == 1.0
    lri = tiny(method="lri_bernoulli", pos_scale=0.01)
    rb = random_batch()
    ex = Explainer(
        model=PyGModel(lri),
        algorithm=HepxAlgorithm("lri_bernoulli"),
        explanation_type="model",
        node_mask_type="object",
        model_config=dict(mode="binary_classification", task_level="graph", return_type="raw"),
    )
    out = ex(rb.x, PyGModel.no_edges(rb), pos=rb.pos, batch=rb.batch)
    assert not lri.training
    with torch.no_grad():
        assert torch.allclose(out.node_mask.view(-1), lri(rb).node_scores)


def test_fidelity_of_perfect_and_reversed_scores():
    from hepx.explain.metric import fidelity

    model = ToyClassifier(bias=-0.1)
    b = toy_batch()
    good = fidelity(model, b, b.x[:, 0], k=3)
    bad = fidelity(model, b, -b.x[:, 0], k=3)
    assert (good["fid_plus"] > bad["fid_plus"]).all()
    assert torch.allclose(good["fid_minus"], torch.zeros(3), atol=1e-6)
