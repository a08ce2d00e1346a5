"""Ensembles of post-hoc explanations (EnsembleExplainer): the mean of the members'
within-sample normalised scores, checked by hand on toy models whose GradGeo scores are known.

ToyClassifier(invariant=True): logit = w0 sum_i x_i |p_i|^2 + ..., so GradGeo = 2 |w0| x_i |p_i|;
ToyClassifier(invariant=False): logit = w0 sum_i x_i p_ix^2 + ..., so GradGeo = 2 |w0| x_i |p_ix|.
"""

import math

import numpy as np
import pytest
import torch
from explain_toys import ToyClassifier, random_batch, toy_batch
from scipy.stats import rankdata
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from hepx.errors import ConfigError, InputError
from hepx.explain import EnsembleExplainer, ExplainerAlgorithm, get_explainer
from hepx.explain.algorithm import GradGeo, normalise_scores


def hand_batch():
    """Three samples: 3 flagged points; 1 flagged + 2 unflagged (a tie at 0); 1 point."""
    clouds = [
        ([[1.0, 1.0, 0.0], [3.0, 0.0, 0.0], [0.0, 2.0, 0.0]], [1, 1, 1]),
        ([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 5.0, 0.0]], [1, 0, 0]),
        ([[1.0, 0.0, 0.0]], [1]),
    ]
    data = []
    for pos, flag in clouds:
        x = torch.tensor(flag, dtype=torch.float32).view(-1, 1)
        data.append(Data(pos=torch.tensor(pos), x=x, node_label=x[:, 0].long(), y=torch.ones(1, 1)))
    return Batch.from_data_list(data)


def scaled(model, factor):
    """The same toy model with its logit's point term (and so its GradGeo) times ``factor``."""
    with torch.no_grad():
        model.w[0] = factor
    return model


def test_member_scores_are_the_known_gradients():
    b = hand_batch()
    a = GradGeo()(ToyClassifier(invariant=True), b).scores
    z = GradGeo()(ToyClassifier(invariant=False), b).scores
    torch.testing.assert_close(a, torch.tensor([2 * math.sqrt(2), 6, 4, 4, 0, 0, 2]))
    torch.testing.assert_close(z, torch.tensor([2.0, 6, 0, 4, 0, 0, 2]))


def test_rank_average_by_hand():
    """Ranks in [0, 1] per sample (ties averaged), then the mean over the two members:
    sample 0: A ranks [0, 1, .5], B ranks [.5, 1, 0]; sample 1: both [1, .25, .25] (the two
    zeros share ranks 0 and 1 of 2); sample 2: one point -> .5."""
    b = hand_batch()
    ens = EnsembleExplainer(GradGeo(), [ToyClassifier(True), ToyClassifier(False)])
    out = ens(ens.models[0], b)
    expected = torch.tensor([0.25, 1.0, 0.25, 1.0, 0.25, 0.25, 0.5])
    torch.testing.assert_close(out.scores, expected)
    assert out.method == "gradgeo+ens2"
    assert out.options["members"] == 2 and out.options["normalise"] == "rank"


def test_max_normalisation_by_hand():
    """Scores over the sample's largest |score|: sample 0: A [2 sqrt2 / 6, 1, 4 / 6], B
    [2 / 6, 1, 0]; sample 1: both [1, 0, 0]; sample 2: both [1]."""
    b = hand_batch()
    ens = EnsembleExplainer(GradGeo(), [ToyClassifier(True), ToyClassifier(False)], "max")
    first = (2 * math.sqrt(2) / 6 + 2 / 6) / 2
    expected = torch.tensor([first, 1.0, (4 / 6) / 2, 1.0, 0.0, 0.0, 1.0])
    torch.testing.assert_close(ens(ens.models[1], b).scores, expected)


@pytest.mark.parametrize("rule", ["rank", "max"])
def test_scale_of_one_member_does_not_matter(rule):
    b = toy_batch(sizes=(9, 12, 7, 5), seed=3)
    plain, big = ToyClassifier(True), scaled(ToyClassifier(True), 1000.0)
    other = ToyClassifier(False)
    torch.testing.assert_close(GradGeo()(big, b).scores, 1000 * GradGeo()(plain, b).scores)
    ref = EnsembleExplainer(GradGeo(), [plain, other], rule)
    ens = EnsembleExplainer(GradGeo(), [big, other], rule)
    torch.testing.assert_close(ens(big, b).scores, ref(plain, b).scores, rtol=0, atol=1e-6)
    # without the normalisation the big member would decide the order alone
    raw = [GradGeo()(m, b).scores for m in (plain, big, other)]
    assert not torch.equal(
        normalise_scores(raw[0] + raw[2], b.batch), normalise_scores(raw[1] + raw[2], b.batch)
    )


def test_ensemble_of_one_is_the_normalised_single_explanation():
    b = random_batch(sizes=(6, 9, 4), x_dim=1, seed=2, scale=1.0)
    model = ToyClassifier(True)
    single = GradGeo()(model, b).scores
    ens = EnsembleExplainer(GradGeo(), [model])(model, b).scores
    torch.testing.assert_close(ens.double(), normalise_scores(single, b.batch))
    expected = np.concatenate(  # scipy's average ranks, independently
        [(rankdata(single[b.batch == i]) - 1) / ((b.batch == i).sum().item() - 1) for i in range(3)]
    )
    np.testing.assert_allclose(ens.numpy(), expected, atol=1e-6)


def test_normalise_scores_ties_and_zero_samples():
    s = torch.tensor([3.0, 3.0, 1.0, 0.0, 0.0, -2.0, 7.0])
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(
        normalise_scores(s, batch, "rank"),
        torch.tensor([0.75, 0.75, 0.0, 0.5, 0.5, 0.0, 1.0], dtype=torch.float64),
    )
    torch.testing.assert_close(
        normalise_scores(s, batch, "max"),
        torch.tensor([1.0, 1.0, 1 / 3, 0.0, 0.0, -2 / 7, 1.0], dtype=torch.float64),
    )
    with pytest.raises(ConfigError, match="normalise must be one of rank, max"):
        normalise_scores(s, batch, "zscore")


class CountingFit(ExplainerAlgorithm):
    """A fitted toy method: scores = pos_x times the fitted model's w0; counts its fits."""

    name = "counting"
    requires_fit = True

    def __init__(self) -> None:
        self.fits, self.fitted_on, self.batches = 0, None, 0

    def fit(self, model, loader, **kwargs):
        self.fits += 1
        self.fitted_on = model
        self.batches = sum(1 for _ in loader)
        self.kwargs = kwargs
        return self

    def explain(self, model, data, inp):
        if self.fitted_on is None:
            raise ConfigError("counting must be fit first")
        return inp.pos[:, 0] * self.fitted_on.w[0].detach()


def test_fitted_explainers_are_fit_once_per_member():
    members = [scaled(ToyClassifier(True), f) for f in (1.0, 2.0, -1.0)]
    base = CountingFit()
    ens = EnsembleExplainer(base, members)
    assert ens.requires_fit
    b = toy_batch()
    with pytest.raises(ConfigError, match="must be fit first"):
        ens(members[0], b)
    loader = DataLoader([toy_batch(seed=s).get_example(0) for s in range(4)], batch_size=2)
    ens.fit(members[1], loader, epochs=3)
    assert base.fits == 0 and base.fitted_on is None  # the given explainer is untouched
    assert len({id(e) for e in ens.explainers}) == 3
    for expl, member in zip(ens.explainers, members, strict=True):
        assert expl.fits == 1 and expl.fitted_on is member
        assert expl.batches == 2 and expl.kwargs == {"epochs": 3}
    # the third member (w0 = -1) reverses the order of the first two: ranks 2 x r + (1 - r)
    r = normalise_scores(b.pos[:, 0], b.batch)
    torch.testing.assert_close(ens(members[0], b).scores.double(), (2 * r + (1 - r)) / 3)
    with pytest.raises(ConfigError, match="2 loaders for 3 members"):
        ens.fit(members[0], [loader, loader])


def test_bernmask_p_members_fit_their_own_networks():
    members = [ToyClassifier(True), scaled(ToyClassifier(True), 3.0)]
    base = get_explainer("bernmask_p")
    ens = EnsembleExplainer(base, members)
    loaders = [DataLoader([toy_batch(seed=s).get_example(0) for s in range(4)]) for _ in range(2)]
    ens.fit(members[0], loaders, epochs=1)
    assert base.net is None
    nets = [e.net for e in ens.explainers]
    assert all(n is not None for n in nets) and nets[0] is not nets[1]
    scores = ens(members[0], toy_batch()).scores
    assert scores.shape == (28,) and bool(((scores >= 0) & (scores <= 1)).all())


def test_model_must_be_a_member_and_calls_are_deterministic():
    b = toy_batch()
    members = [ToyClassifier(True), ToyClassifier(False)]
    ens = EnsembleExplainer(GradGeo(), members)
    first = ens(members[0], b).scores
    assert torch.equal(first, ens(members[1], b).scores)
    again = EnsembleExplainer(GradGeo(), [ToyClassifier(True), ToyClassifier(False)])
    assert torch.equal(first, again(again.models[0], b).scores)
    with pytest.raises(InputError, match="one of the ensemble's 2 members"):
        ens(ToyClassifier(True), b)


def test_bad_ensembles_are_refused():
    with pytest.raises(ConfigError, match="at least one model"):
        EnsembleExplainer(GradGeo(), [])
    with pytest.raises(ConfigError, match="normalise must be one of"):
        EnsembleExplainer(GradGeo(), [ToyClassifier()], normalise="mean")
