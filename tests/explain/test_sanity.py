"""Sanity checks as published, pinned by toys whose answer is known by hand.

* model randomisation (Adebayo et al. 2018): the cascading variant re-initialises from the
  output down, cumulatively, and reports the similarity after every block; the independent
  variant one block at a time; ``full`` all at once;
* model perturbation (Rahman et al., arXiv 2206.05903): the noise-scale search restarts for
  every draw, and draws that never met the accuracy tolerance are flagged.
"""

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from explain_toys import random_batch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool

from hepx.explain import get_explainer
from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.explain.metric.sanity import model_perturbation, model_randomisation
from hepx.models import build_model

# --------------------------------------------------------------------------- randomisation

#: Parameter-name prefixes of each block of a 2-layer classifier, written out by hand.
BLOCK_PREFIXES = {
    "head": ("head.",),
    "conv2": ("backbone.convs.1.", "backbone.norms.1."),
    "conv1": ("backbone.convs.0.", "backbone.norms.0."),
    "encoder": ("backbone.node_encoder.",),
}


def _tiny(backbone="dgcnn", **cfg):
    torch.manual_seed(0)
    model = build_model(
        {"backbone": backbone, "hidden_channels": 8, "num_layers": 2, "pos_scale": 0.01, **cfg},
        pos_dim=3,
        x_dim=1,
    )
    with torch.no_grad():  # "trained" weights: none equal to a fresh initialisation
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


class BlockSpy(ExplainerAlgorithm):
    """Records which blocks differ from ``reference``; scores ``(-1)^k pos_x`` with ``k`` the
    number of changed blocks, so that every sample's Spearman correlation with the original
    explanation is exactly ``(-1)^k``."""

    name = "block_spy"

    def __init__(self, reference: nn.Module) -> None:
        self.ref = {n: p.detach().clone() for n, p in reference.named_parameters()}
        self.calls: list[set[str]] = []

    def explain(self, model, data, inp):
        changed = {
            block
            for block, prefixes in BLOCK_PREFIXES.items()
            for n, p in model.named_parameters()
            if n.startswith(prefixes) and not torch.equal(p, self.ref[n])
        }
        self.calls.append(changed)
        return inp.pos[:, 0] * (-1.0) ** len(changed)


def _offset_cos(a: np.ndarray, b: np.ndarray, eps: float = 1e-4) -> float:
    a, b = a + eps, b + eps
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_cascading_randomisation_is_cumulative_from_the_output_down():
    model = _tiny()
    b = random_batch(sizes=(9, 12, 7), x_dim=1)
    spy = BlockSpy(model)
    r = model_randomisation(spy, model, b, mode="cascading", seed=3)
    assert spy.calls == [
        set(),  # the original explanation
        {"head"},
        {"head", "conv2"},
        {"head", "conv2", "conv1"},
        {"head", "conv2", "conv1", "encoder"},
    ]
    assert [s["block"] for s in r["stages"]] == ["head", "conv2", "conv1", "encoder"]
    assert r["stages"][1]["randomised"] == ["head", "conv2"]
    assert r["curve"] == {"head": -1.0, "conv2": 1.0, "conv1": -1.0, "encoder": 1.0}
    assert r["spearman"] == 1.0  # the last stage: everything random (4 flips)
    # cosine with the 1e-4 offset, per sample, by hand
    x, bt = b.pos[:, 0].double().numpy(), b.batch.numpy()
    flipped = np.mean([_offset_cos(-x[bt == i], x[bt == i]) for i in range(3)])
    assert r["stages"][0]["cosine"] == pytest.approx(flipped, abs=1e-6)
    assert r["stages"][1]["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_independent_randomisation_changes_one_block_at_a_time_and_full_all():
    model = _tiny()
    b = random_batch(sizes=(9, 12, 7), x_dim=1)
    spy = BlockSpy(model)
    r = model_randomisation(spy, model, b, mode="independent", seed=3)
    assert spy.calls[1:] == [{"head"}, {"conv2"}, {"conv1"}, {"encoder"}]
    assert r["curve"] == {"head": -1.0, "conv2": -1.0, "conv1": -1.0, "encoder": -1.0}
    assert r["spearman"] == -1.0  # no fully random stage: the mean over the blocks
    spy = BlockSpy(model)
    full = model_randomisation(spy, model, b, mode="full", seed=3)
    assert spy.calls[1:] == [{"head", "conv2", "conv1", "encoder"}]
    assert [s["block"] for s in full["stages"]] == ["all"]
    with pytest.raises(ValueError, match="mode"):
        model_randomisation(spy, model, b, mode="layerwise")


class LastModelSpy(ExplainerAlgorithm):
    """Keeps the weights of the last model it explained; scores ``pos_x``."""

    name = "last_model_spy"
    weights: ClassVar[dict[str, torch.Tensor]] = {}

    def explain(self, model, data, inp):
        type(self).weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        return inp.pos[:, 0]


@pytest.mark.parametrize("backbone", ["dgcnn", "egnn", "point_transformer"])
@pytest.mark.parametrize(
    "method", ["plain", "lri_bernoulli", "lri_gaussian", "gmt_lin", "gmt_sam", "pointmask"]
)
def test_full_randomisation_leaves_no_trained_weight(backbone, method):
    # PointMask's mask comes from a backbone of its own: a check that skipped it left the
    # published PointMask's mask untouched by every stage below the head
    model = _tiny(backbone, method=method)
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    b = random_batch(sizes=(9, 12), x_dim=1)
    model_randomisation(LastModelSpy(), model, b, mode="full", seed=3)
    kept = [n for n, p in LastModelSpy.weights.items() if torch.equal(p, trained[n])]
    assert trained and kept == []


def test_randomisation_is_seeded_and_its_last_cascading_stage_is_full_randomisation():
    model = _tiny()
    b = random_batch(sizes=(20, 25, 18), x_dim=1, scale=1.0)
    e = get_explainer("gradgeo")
    casc = model_randomisation(e, model, b, mode="cascading", seed=1)
    full = model_randomisation(e, model, b, mode="full", seed=1)
    assert casc["stages"][-1]["spearman"] == full["spearman"] == casc["spearman"]
    assert casc["stages"][-1]["cosine"] == full["cosine"]
    again = model_randomisation(e, model, b, mode="cascading", seed=1)
    assert again["curve"] == casc["curve"]
    other = model_randomisation(e, model, b, mode="cascading", seed=2)
    assert other["curve"] != casc["curve"]
    assert casc["spearman"] < 0.7  # the explanation does depend on the weights


# --------------------------------------------------------------------------- perturbation

N_W = 20_000  # entries of the toy's weight: its mean squared perturbation is s^2 (1 +- 2 %)


class DriftModel(nn.Module):
    """``logit_b = (sum_i x_i of sample b) * (T - mean((w - w0)^2))`` with ``w`` alternating
    +-1 (``std(w) = 1``). Gaussian weight noise of scale ``s`` moves ``mean((w - w0)^2)`` to
    about ``s^2``: every prediction flips (accuracy 1 -> 0) once ``s^2 > T``, whatever the
    draw."""

    forwards: ClassVar[list[float]] = []  # the gain of every forward pass (class level: not copied)

    def __init__(self, threshold: float) -> None:
        super().__init__()
        w = torch.ones(N_W)
        w[1::2] = -1
        self.w = nn.Parameter(w)
        self.register_buffer("w0", w.clone())
        self.threshold = threshold

    def gain(self) -> torch.Tensor:
        return self.threshold - ((self.w - self.w0) ** 2).mean()

    def forward(self, data):
        DriftModel.forwards.append(float(self.gain()))
        return global_add_pool(data.pos[:, :1], data.batch) * self.gain()


class GainSpy(ExplainerAlgorithm):
    """Scores ``gain * pos_x``: Spearman +1 with the original while the gain keeps its sign."""

    name = "gain_spy"

    def explain(self, model, data, inp):
        return inp.pos[:, 0] * model.gain().detach()


def _signed_batch():
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(6):
        pos = torch.randn(8, 3, generator=g)
        pos[:, 0] += 2.0 if i % 2 else -2.0  # sum of x: clearly positive or negative
        y = float(pos[:, 0].sum() > 0)
        data.append(Data(pos=pos, x=torch.zeros(8, 0), y=torch.tensor([[y]])))
    return Batch.from_data_list(data)


def test_perturbation_scale_search_restarts_for_every_draw():
    # T = 10: scales 8 (s^2 = 64) and 4 (16) flip every prediction, 2 (4) keeps them: by
    # hand, every draw must search 8 -> 4 -> 2, i.e. 3 accuracy evaluations and 2 halvings.
    # A search continuing from the previous draw's scale would accept 2 at once from draw 2.
    DriftModel.forwards = []
    model = DriftModel(threshold=10.0)
    b = _signed_batch()
    r = model_perturbation(GainSpy(), model, b, noise=8.0, n_draws=4, max_halvings=5, seed=0)
    assert r["acc"] == 1.0
    assert [d["noise"] for d in r["draws"]] == [2.0] * 4
    assert [d["halvings"] for d in r["draws"]] == [2] * 4
    assert len(DriftModel.forwards) == 1 + 4 * 3  # acc0, then 3 attempts per draw
    drift = [10.0 - g for g in DriftModel.forwards[1:]]  # mean((w - w0)^2) of each attempt
    assert drift == pytest.approx([64.0, 16.0, 4.0] * 4, rel=0.05)
    assert r["tolerance_met"] is True and r["n_missed"] == 0
    assert r["spearman"] == r["spearman_met"] == 1.0
    assert r["noise"] == 2.0 and r["acc_perturbed"] == 1.0


def test_perturbation_flags_draws_that_never_met_the_tolerance():
    # max_halvings = 1: only the scales 8 and 4 are tried, both flip every prediction.
    DriftModel.forwards = []
    r = model_perturbation(
        GainSpy(), DriftModel(10.0), _signed_batch(), noise=8.0, n_draws=3, max_halvings=1
    )
    assert r["tolerance_met"] is False and r["n_missed"] == 3
    assert [d["tolerance_met"] for d in r["draws"]] == [False] * 3
    assert [d["noise"] for d in r["draws"]] == [4.0] * 3  # the smallest scale tried
    assert r["acc_perturbed"] == 0.0
    assert r["spearman"] == -1.0  # still reported, but flagged
    assert np.isnan(r["spearman_met"])


def test_perturbation_is_seeded():
    model = _tiny()
    b = random_batch(sizes=(20, 25, 18), x_dim=1, scale=1.0)
    e = get_explainer("gradgeo")
    r1 = model_perturbation(e, model, b, noise=0.01, seed=4)
    r2 = model_perturbation(e, model, b, noise=0.01, seed=4)
    r3 = model_perturbation(e, model, b, noise=0.01, seed=5)
    assert r1 == r2
    assert r1["spearman"] != r3["spearman"]
    assert r1["spearman"] > 0.9


# --------------------------------------------------------------------------- the table


def test_evaluation_table_reports_the_cascading_curve_and_the_tolerance_flag():
    from hepx.evaluation.table import _Run, _sanity

    model = _tiny()
    b = random_batch(sizes=(20, 25, 18), x_dim=1, scale=1.0)
    run = _Run(Path("run"), model, {"model": {"backbone": "dgcnn"}}, None, None, {})
    row = _sanity(get_explainer("gradgeo"), run, b, {"seed": 0}, None)
    curve = [k for k in row if k.startswith("sanity_cascade_")]
    assert curve == [
        "sanity_cascade_head_spearman",
        "sanity_cascade_conv2_spearman",
        "sanity_cascade_conv1_spearman",
        "sanity_cascade_encoder_spearman",
    ]
    assert row["sanity_cascade_encoder_spearman"] == row["sanity_random_spearman"]
    assert isinstance(row["sanity_perturb_tol_met"], bool)
    assert row["sanity_perturb_tol_met"] == (row["sanity_perturb_missed"] == 0)
