"""Explanation invariance / equivariance: exact on invariant toys, below 1 otherwise."""

import math

import pytest
import torch
from explain_toys import ToyClassifier, random_batch, toy_batch

from hepx.explain import get_explainer
from hepx.explain.algorithm.symmetrised import Symmetrised
from hepx.explain.metric.robustness import (
    E3,
    Permutation,
    PhiShift,
    RotationZ,
    cosine_per_sample,
    explanation_robustness,
    haar_orthogonal,
    model_invariance,
    spearman_per_sample,
    wrap_angle,
)
from hepx.models import build_model


def test_groups_act_per_sample():
    b = random_batch(sizes=(5, 8, 6))
    gen = torch.Generator().manual_seed(0)
    act = Permutation().sample(b, gen)
    assert torch.equal(act.data.batch, b.batch)  # points stay in their sample
    assert torch.equal(b.batch[act.perm], b.batch)
    assert torch.equal(act.data.pos, b.pos[act.perm])
    assert torch.equal(act.to_original(act.act(b.pos[:, 0])), b.pos[:, 0])
    rot = RotationZ().sample(b, gen).data.pos
    assert torch.allclose(rot[:, 2], b.pos[:, 2])
    assert torch.allclose(rot[:, :2].norm(dim=-1), b.pos[:, :2].norm(dim=-1), rtol=1e-5)
    q = haar_orthogonal(16, gen)
    assert torch.allclose(
        q @ q.transpose(1, 2), torch.eye(3, dtype=q.dtype).expand(16, 3, 3), atol=1e-10
    )
    e3 = E3(translation=10.0).sample(b, gen).data.pos
    d0 = torch.cdist(b.pos[:5], b.pos[:5])
    assert torch.allclose(torch.cdist(e3[:5], e3[:5]), d0, rtol=1e-4, atol=1e-3)


def test_phi_wrap_into_minus_pi_pi():
    v = torch.tensor([math.pi, -math.pi, 3 * math.pi, 0.1, -3.0 - 2 * math.pi], dtype=torch.float64)
    w = wrap_angle(v)
    assert (w > -math.pi).all() and (w <= math.pi).all()
    assert torch.allclose(
        w, torch.tensor([math.pi, math.pi, math.pi, 0.1, -3.0], dtype=torch.float64)
    )
    b = random_batch(dim=2, scale=1.0, periodic=True)
    out = PhiShift(axis=1).sample(b, torch.Generator().manual_seed(1)).data.pos
    assert (out[:, 1] > -math.pi).all() and (out[:, 1] <= math.pi + 1e-6).all()
    assert torch.equal(out[:, 0], b.pos[:, 0])


def test_similarities():
    batch = torch.tensor([0, 0, 0, 1, 1])
    a = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0])
    assert torch.allclose(cosine_per_sample(a, a, batch), torch.ones(2))
    assert torch.allclose(spearman_per_sample(a, a, batch), torch.ones(2))
    rev = torch.tensor([3.0, 2.0, 1.0, 0.0, 0.0])
    assert spearman_per_sample(a, rev, batch)[0] == pytest.approx(-1.0)


@pytest.mark.parametrize("group", [RotationZ(), E3(translation=0.0), Permutation()])
@pytest.mark.parametrize("name", ["gradgeo", "gradcam", "ig"])
def test_exactly_invariant_model_and_explainer_score_one(group, name):
    model = ToyClassifier(invariant=True)
    b = toy_batch(seed=3)
    e = get_explainer(name, **({"n_steps": 8} if name == "ig" else {}))
    r = explanation_robustness(e, model, b, group, n_draws=5, seed=0)
    eq = "equivariance" if group.equivariant else "invariance"
    assert torch.allclose(r[f"{eq}_cos"], torch.ones(3), atol=1e-5)
    assert torch.allclose(r[f"{eq}_spearman"], torch.ones(3), atol=1e-5)
    assert r["model_cos"] == pytest.approx(1.0, abs=1e-6)


def test_non_invariant_model_scores_below_one_and_symmetrising_helps():
    model = ToyClassifier(invariant=False)
    b = toy_batch(seed=3, n_flag=6)
    e = get_explainer("gradgeo")
    r = explanation_robustness(e, model, b, RotationZ(), n_draws=20, seed=0)
    assert r["invariance_cos"].mean() < 0.99
    assert r["invariance_spearman"].mean() < 0.9
    assert model_invariance(model, b, RotationZ(), n_draws=5)["model_max_abs_diff"] > 1e-2
    sym = Symmetrised(e, RotationZ(), n=64, seed=5)
    rs = explanation_robustness(sym, model, b, RotationZ(), n_draws=4, seed=0)
    assert rs["invariance_cos"].mean() > r["invariance_cos"].mean()
    assert rs["invariance_cos"].min() > 0.99


def test_egnn_gradient_methods_rotation_invariant_and_permutation_equivariant():
    torch.manual_seed(0)
    model = build_model(
        {"backbone": "egnn", "hidden_channels": 8, "num_layers": 2, "pos_scale": 0.01},
        pos_dim=3,
        x_dim=0,
    ).eval()
    b = random_batch(sizes=(12, 15))
    for name in ["gradgeo", "ig"]:
        e = get_explainer(name, **({"n_steps": 8} if name == "ig" else {}))
        for group in (RotationZ(), Permutation()):
            r = explanation_robustness(e, model, b, group, n_draws=3, seed=0)
            eq = "equivariance" if group.equivariant else "invariance"
            assert r[f"{eq}_cos"].min() > 0.999, (name, group.name)
            assert r["model_cos"] == pytest.approx(1.0, abs=1e-5)


def test_phi_shift_invariance_of_ig_with_moving_baseline():
    torch.manual_seed(0)
    model = build_model(
        {
            "backbone": "egnn",
            "hidden_channels": 8,
            "num_layers": 2,
            "graph": {"kind": "radius", "r": 1.0},
        },
        pos_dim=2,
        x_dim=1,
        period=[None, 2 * math.pi],
    ).eval()
    b = random_batch(sizes=(8, 10), dim=2, x_dim=1, scale=0.5, periodic=True)
    r = explanation_robustness(get_explainer("ig", n_steps=16), model, b, PhiShift(), n_draws=4)
    assert r["model_cos"] == pytest.approx(1.0, abs=1e-4)
    assert r["invariance_cos"].min() > 0.99
