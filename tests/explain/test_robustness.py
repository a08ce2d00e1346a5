"""Explanation invariance / equivariance: exact on invariant toys, below 1 otherwise."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from explain_toys import ToyClassifier, random_batch, toy_batch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool

from hepx.explain import get_explainer
from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.explain.algorithm.symmetrised import Symmetrised
from hepx.explain.metric.robustness import (
    E3,
    Action,
    Group,
    Permutation,
    PhiShift,
    RotationZ,
    applicable_groups,
    cosine_per_sample,
    default_group,
    explanation_robustness,
    haar_orthogonal,
    is_e3_invariant,
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
    assert r["model_cos"] is None  # one logit per sample: no cosine
    assert torch.allclose(r["model_abs_diff"], torch.zeros(3), atol=1e-5)
    assert torch.equal(r["model_class_agreement"], torch.ones(3))


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
            assert float(r["model_abs_diff"].max()) < 1e-4


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
    assert float(r["model_abs_diff"].max()) < 1e-4
    assert r["model_summary"]["class_agreement"]["p5"] == 1.0
    assert r["invariance_cos"].min() > 0.99


# --------------------------------------------------------------------------- model invariance


class FlipFirstSample(Group):
    """``x -> -x`` on the points of sample 0 only; the other samples are left alone."""

    name = "flip_first"

    def sample(self, data, gen):
        out = data.clone()
        pos = data.pos.clone()
        pos[data.batch == 0, 0] *= -1
        out.pos = pos
        return Action(out)


class SumX(nn.Module):
    """``logit_b = sum of x over sample b`` (and a constant second logit when ``vector``)."""

    def __init__(self, vector: bool = False) -> None:
        super().__init__()
        self.vector = vector

    def forward(self, data):
        s = global_add_pool(data.pos[:, :1], data.batch)
        return torch.cat([s, torch.ones_like(s)], dim=1) if self.vector else s


def _sums_batch(sums=(0.3, -2.0, 50.0)):
    data = []
    for s in sums:
        pos = torch.zeros(4, 3, dtype=torch.float64)
        pos[:, 0] = torch.tensor([1.0, -1.0, 0.5, s - 0.5], dtype=torch.float64)
        pos[:, 1:] = torch.arange(8, dtype=torch.float64).view(4, 2)
        data.append(Data(pos=pos.float(), x=torch.zeros(4, 1), y=torch.ones(1, 1)))
    return Batch.from_data_list(data)


def _offset_cos(a, b, eps=1e-4):
    a, b = np.asarray(a, dtype=float) + eps, np.asarray(b, dtype=float) + eps
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


class ScaledX2(ExplainerAlgorithm):
    """``c * x^2``: not invariant under rotations about z; ``c`` sets its magnitude."""

    name = "scaled_x2"

    def __init__(self, c: float) -> None:
        self.c = c

    def explain(self, model, data, inp):
        return self.c * inp.pos[:, 0] ** 2


def test_model_invariance_is_per_sample():
    # logits 0.3, -2, 50; g flips the first sample's logit to -0.3. By hand: |f(gx) - f(x)|
    # = 0.6, 0, 0 and the class changes for sample 0 only. The cosine of the whole batch's
    # logit vectors would hide that: ~0.99993.
    assert _offset_cos([0.3, -2, 50], [-0.3, -2, 50]) > 0.9999
    b = _sums_batch()
    r = model_invariance(SumX(), b, FlipFirstSample(), n_draws=3)
    assert r["n_logits"] == 1 and r["cos"] is None
    assert torch.allclose(r["abs_diff"], torch.tensor([0.6, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(r["max_abs_diff"], torch.tensor([0.6, 0.0, 0.0]), atol=1e-6)
    assert torch.equal(r["class_agreement"], torch.tensor([0.0, 1.0, 1.0]))
    ad, ag = r["summary"]["abs_diff"], r["summary"]["class_agreement"]
    assert ad["median"] == pytest.approx(0.0, abs=1e-6)
    assert ad["mean"] == pytest.approx(0.2, abs=1e-6)
    assert ad["p95"] == pytest.approx(0.54, abs=1e-6)  # 0 + 0.9 (0.6 - 0): linear interpolation
    assert (ag["mean"], ag["median"], ag["p5"]) == pytest.approx((2 / 3, 1.0, 0.1))
    assert r["model_max_abs_diff"] == pytest.approx(0.6, abs=1e-6)
    # the same numbers inside explanation_robustness (same draws)
    e = explanation_robustness(ScaledX2(1.0), SumX(), b, FlipFirstSample(), n_draws=2)
    assert torch.allclose(e["model_abs_diff"], r["abs_diff"])
    assert torch.equal(e["model_class_agreement"], r["class_agreement"])


def test_model_invariance_of_logit_vectors_uses_the_offset_cosine_per_sample():
    r = model_invariance(SumX(vector=True), _sums_batch(), FlipFirstSample(), n_draws=2)
    assert r["n_logits"] == 2
    expected = [_offset_cos([-0.3, 1.0], [0.3, 1.0]), 1.0, 1.0]
    assert torch.allclose(r["cos"], torch.tensor(expected), atol=1e-6)
    assert torch.equal(r["class_agreement"], torch.ones(3))  # argmax stays the 2nd logit
    assert torch.allclose(r["abs_diff"], torch.tensor([0.6, 0.0, 0.0]), atol=1e-6)


# --------------------------------------------------------------------------- normalisation


def test_offset_makes_the_cosine_scale_dependent_and_per_sample_normalisation_removes_it():
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    a = torch.tensor([2e-6, 0.0, 1e-6, 3.0, -1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 2e-6, 1e-6, 3.0, 1.0, 0.0], dtype=torch.float64)
    raw = cosine_per_sample(a, b, batch)
    # by hand: sample 0 is dominated by the 1e-4 offset although a and b point apart
    assert raw[0] == pytest.approx(_offset_cos([2e-6, 0, 1e-6], [0, 2e-6, 1e-6]), abs=1e-6)
    assert raw[0] > 0.999
    norm = cosine_per_sample(a, b, batch, normalise="per_sample")
    # divided by the largest |score| of the sample: (1, 0, .5) and (0, 1, .5)
    assert norm[0] == pytest.approx(_offset_cos([1, 0, 0.5], [0, 1, 0.5]), abs=1e-6)
    assert norm[0] == pytest.approx(0.2, abs=1e-3)
    assert norm[1] == pytest.approx(_offset_cos([1, -1 / 3, 0], [1, 1 / 3, 0]), abs=1e-6)
    with pytest.raises(ValueError, match="normalise"):
        cosine_per_sample(a, b, batch, normalise="zscore")


def test_normalised_robustness_does_not_depend_on_the_score_scale():
    model, b = ToyClassifier(), toy_batch(seed=3)
    kw = {"n_draws": 8, "seed": 0}
    big = explanation_robustness(ScaledX2(1.0), model, b, RotationZ(), **kw)
    tiny = explanation_robustness(ScaledX2(1e-7), model, b, RotationZ(), **kw)
    assert big["invariance_cos"].mean() < 0.95  # x^2 is not rotation invariant
    assert tiny["invariance_cos"].min() > 0.999  # the offset hides it at 1e-7
    nb = explanation_robustness(ScaledX2(1.0), model, b, "rotation_z", normalise="per_sample", **kw)
    nt = explanation_robustness(ScaledX2(1e-7), model, b, RotationZ(), normalise="per_sample", **kw)
    assert torch.allclose(nb["invariance_cos"], nt["invariance_cos"], atol=1e-5)
    assert nt["invariance_cos"].mean() < 0.95
    assert torch.equal(nt["invariance_spearman"], tiny["invariance_spearman"])
    assert nt["normalise"] == "per_sample"


# --------------------------------------------------------------------------- default group


def _tiny(backbone="egnn", pos_dim=3, x_dim=0, period=None, **cfg):
    torch.manual_seed(0)
    return build_model(
        {"backbone": backbone, "hidden_channels": 8, "num_layers": 2, "pos_scale": 0.01, **cfg},
        pos_dim=pos_dim,
        x_dim=x_dim,
        period=period,
    ).eval()


def test_default_group_follows_the_models_symmetry():
    egnn, beam = _tiny(), _tiny(frame="beam")
    assert is_e3_invariant(egnn) and not is_e3_invariant(beam)
    assert default_group(egnn).name == "e3"
    assert default_group(beam).name == "rotation_z"
    assert default_group(_tiny(unit_direction=True)).name == "rotation_z"
    assert default_group(_tiny(graph={"space": "direction"})).name == "rotation_z"
    assert default_group(_tiny("dgcnn")).name == "rotation_z"
    assert default_group(ToyClassifier(), pos_dim=3).name == "rotation_z"
    tau = _tiny(pos_dim=2, x_dim=1, period=[None, 2 * math.pi], graph={"kind": "radius"})
    g = default_group(tau)
    assert isinstance(g, PhiShift) and g.axis == 1
    # independent check: the beam-frame EGNN is invariant under rotations about z, not E(3);
    # the global-frame EGNN under E(3)
    b = random_batch(sizes=(12, 15))
    rot = model_invariance(beam, b, RotationZ(), n_draws=3)
    e3 = model_invariance(beam, b, E3(translation=0.0), n_draws=3)
    assert rot["model_max_abs_diff"] < 1e-4 < 1e-3 < e3["model_max_abs_diff"]
    assert model_invariance(egnn, b, n_draws=3)["model_max_abs_diff"] < 1e-4
    r = explanation_robustness(get_explainer("gradgeo"), beam, b, n_draws=2)
    assert r["group"] == "rotation_z"
    groups = [Permutation(), RotationZ(), E3()]
    assert [g.name for g in applicable_groups(beam, groups)] == ["permutation", "rotation_z"]
    assert [g.name for g in applicable_groups(egnn, groups)] == ["permutation", "rotation_z", "e3"]


def test_evaluation_table_tests_e3_only_for_e3_invariant_models():
    from hepx.evaluation.table import _robustness, _Run

    b = random_batch(sizes=(12, 15))
    opt = {"robustness_draws": 2, "seed": 0}
    cols = {}
    for frame in ("global", "beam"):
        cfg = {"model": {"backbone": "egnn"}}
        run = _Run(
            Path("run"), _tiny(frame=frame), cfg, None, None, {"pos_dim": 3, "kind": "actstrack"}
        )
        cols[frame] = _robustness(get_explainer("gradgeo"), run, b, opt)
    assert "inv_e3_cos" in cols["global"] and "inv_e3_cos" not in cols["beam"]
    assert "inv_rotation_z_cos" in cols["beam"]
    assert cols["beam"]["model_inv_rotation_z_absdiff"] < 1e-4
    assert cols["beam"]["model_inv_rotation_z_agree"] == 1.0
