"""hepx.inference.predict: the one inference loop, against the model called directly."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from hepx.explain import get_explainer
from hepx.inference import Predictions, is_lri, predict
from hepx.run import TrainedRun

BATCH = 5  # several batches with a short last one


def _test_loader(run: TrainedRun) -> DataLoader:
    return DataLoader(run.splits()["test"], batch_size=BATCH)


def _direct(model, loader):
    """The model called on each batch in eval mode, outputs concatenated by hand."""
    model.eval()
    out = {k: [] for k in ("logits", "scores", "sigma", "y", "event_id", "node_label", "batch")}
    info, offset = [], 0
    with torch.no_grad():
        for data in loader:
            res = model(data)
            logits = res.logits if is_lri(model) else res
            out["logits"].append(logits.view(-1))
            if is_lri(model):
                out["scores"].append(res.node_scores)
                info.append(float(res.info_loss) * data.num_graphs)
                if res.sigma is not None:
                    out["sigma"].append(res.sigma)
            out["y"].append(data.y.view(-1))
            out["event_id"].append(data.event_id)
            out["node_label"].append(data.node_label)
            out["batch"].append(data.batch + offset)
            offset += data.num_graphs
    cat = {k: torch.cat(v).numpy() for k, v in out.items() if v}
    return cat, sum(info) / offset


@pytest.mark.parametrize("fixture", ["acts_lri_gaussian_run", "tau_lri_run"])
def test_predict_is_the_model_on_each_batch(fixture, request):
    run = TrainedRun.open(request.getfixturevalue(fixture))
    model, loader = run.model(), _test_loader(run)
    assert len(loader) > 1
    model.train()  # predict puts the model in eval mode itself
    pred = predict(model, loader)
    assert isinstance(pred, Predictions) and not model.training
    want, info = _direct(model, loader)
    n_points = sum(d.num_nodes for d in loader.dataset)
    assert pred.num_samples == len(loader.dataset) and len(pred.scores) == n_points
    np.testing.assert_allclose(pred.logits, want["logits"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pred.scores, want["scores"], rtol=1e-6, atol=1e-7)
    for key in ("y", "event_id", "node_label", "batch"):
        np.testing.assert_array_equal(getattr(pred, key), want[key], err_msg=key)
    if run.method == "lri_gaussian":
        assert pred.sigma.shape == (n_points, 3, 3)
        np.testing.assert_allclose(pred.sigma, want["sigma"], rtol=1e-6, atol=1e-9)
    else:
        assert pred.sigma is None
    # loss: mean binary cross-entropy per sample; info loss: the batches' sample-weighted mean
    y, logits = torch.from_numpy(want["y"]), torch.from_numpy(want["logits"])
    bce = F.binary_cross_entropy_with_logits(logits.double(), y.double())
    assert pred.loss == pytest.approx(float(bce), rel=1e-5)
    assert pred.info_loss == pytest.approx(info, rel=1e-6) and pred.info_loss > 0
    np.testing.assert_allclose(
        pred.probabilities(), 1 / (1 + np.exp(-want["logits"].astype(float)))
    )


def test_predict_without_lri_runs_the_classifier_alone(tau_lri_run):
    run = TrainedRun.open(tau_lri_run)
    model, loader = run.model(), _test_loader(run)
    pred = predict(model, loader, lri=False)
    want, _ = _direct(model.classifier, loader)
    np.testing.assert_allclose(pred.logits, want["logits"], rtol=1e-6, atol=1e-7)
    assert len(pred.scores) == 0 and pred.sigma is None and pred.info_loss == 0.0


def test_predict_of_a_plain_model(tau_plain_run):
    run = TrainedRun.open(tau_plain_run)
    model, loader = run.model(), _test_loader(run)
    pred = predict(model, loader)
    want, _ = _direct(model, loader)
    np.testing.assert_allclose(pred.logits, want["logits"], rtol=1e-6, atol=1e-7)
    assert len(pred.scores) == 0 and pred.sigma is None and pred.info_loss == 0.0


@pytest.mark.parametrize(
    ("fixture", "method"),
    [("tau_plain_run", "gradgeo"), ("tau_lri_run", "gradcam"), ("tau_lri_run", "lri_bernoulli")],
)
def test_with_an_explainer_scores_are_the_explainers_logits_the_models(fixture, method, request):
    run = TrainedRun.open(request.getfixturevalue(fixture))
    model, loader = run.model(), _test_loader(run)
    explainer = get_explainer(method)
    pred = predict(model, loader, explainer=explainer)
    scores = np.concatenate([explainer(model, data).numpy() for data in loader])
    np.testing.assert_allclose(pred.scores, scores, rtol=1e-6, atol=1e-7)
    want, _ = _direct(model, loader)
    np.testing.assert_allclose(pred.logits, want["logits"], rtol=1e-6, atol=1e-7)
    assert pred.sigma is None  # no LRI noise recorded when the scores are the explainer's
    if method == "lri_bernoulli":  # the LRI model's own scores, through the explainer
        np.testing.assert_allclose(pred.scores, want["scores"], rtol=1e-6, atol=1e-7)
    elif is_lri(model):  # a post-hoc method explains the classifier, not the LRI scores
        assert not np.allclose(pred.scores, want["scores"])
