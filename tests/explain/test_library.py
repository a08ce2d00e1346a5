"""PyG's explainers on hepx's models: the existence adapter, and each method against an
independent expectation (autograd, IG's completeness, PyG called directly)."""

import pytest
import torch
from explain_toys import ToyClassifier, random_batch, toy_batch
from sklearn.metrics import roc_auc_score
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.explain import get_explainer
from hepx.explain.algorithm.library import ExistenceModel
from hepx.models import build_model


def tiny(backbone="dgcnn", seed=0):
    torch.manual_seed(seed)
    cfg = {"backbone": backbone, "method": "plain", "hidden_channels": 8, "num_layers": 2}
    return build_model({**cfg, "pos_scale": 0.01}, pos_dim=3, x_dim=0).eval()


def _graph(model, b):
    return model.build_graph(model.scale_pos(b.pos), b.batch)


def test_existence_model_weights_messages_by_both_ends():
    model, b = tiny(), random_batch()
    ei = _graph(model, b)
    wrapper = ExistenceModel(model)
    with torch.no_grad():
        ones = torch.ones(b.num_nodes, 1)
        assert torch.allclose(wrapper(ones, ei, b.pos, b.batch, b.x), model(b, edge_index=ei))
        e = torch.rand(b.num_nodes, 1, generator=torch.Generator().manual_seed(1))
        expected = model(b, edge_index=ei, edge_weight=e[ei[0], 0] * e[ei[1], 0])
        assert torch.allclose(wrapper(e, ei, b.pos, b.batch, b.x), expected)
        probs = ExistenceModel(model, probs=True)(e, ei, b.pos, b.batch, b.x)
        assert torch.allclose(probs, torch.sigmoid(expected))


def test_captum_saliency_is_the_gradient_of_the_probability():
    model, b = tiny(), random_batch()
    ei = _graph(model, b)
    e = torch.ones(b.num_nodes, 1, requires_grad=True)
    p = torch.sigmoid(model(b, edge_index=ei, edge_weight=e[ei[0], 0] * e[ei[1], 0]))
    (g,) = torch.autograd.grad(p.sum(), e)  # each graph's probability depends on its points only
    # (the predicted class's probability, 1 - p for class 0, has the same gradient magnitude)
    got = get_explainer("captum_saliency")(model, b).scores
    assert torch.allclose(got, g.abs().view(-1), atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # weights' gradients left as found


def test_captum_ig_is_complete_from_the_empty_cloud():
    model, b = tiny("egnn"), random_batch(sizes=(7, 9))
    ei = _graph(model, b)
    with torch.no_grad():
        full = torch.sigmoid(model(b, edge_index=ei)).view(-1)
        zero = torch.zeros(ei.shape[1])
        empty = torch.sigmoid(model(b, edge_index=ei, edge_weight=zero)).view(-1)
    attr = get_explainer("captum_ig", n_steps=200)(model, b).scores
    per_graph = scatter(attr, b.batch, reduce="sum")
    # PyG attributes the probability of the predicted class (1 - p where p < 1/2)
    sign = torch.where(full > 0.5, 1.0, -1.0)
    assert torch.allclose(per_graph, sign * (full - empty), atol=2e-4)


def test_gnnexplainer_is_pyg_s_and_finds_the_points_the_logit_depends_on():
    from torch_geometric.explain import Explainer, GNNExplainer

    model, b = ToyClassifier(), toy_batch()
    got = get_explainer("gnnexplainer", epochs=100, seed=3)(model, b).scores
    assert roc_auc_score(b.node_label.numpy(), got.numpy()) > 0.9
    # the library called directly, same seed, same inputs: the same mask
    ei = model.build_graph(b.pos, b.batch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        explainer = Explainer(
            ExistenceModel(model),
            GNNExplainer(epochs=100, lr=0.01),
            explanation_type="model",
            node_mask_type="object",
            model_config={
                "mode": "binary_classification",
                "task_level": "graph",
                "return_type": "raw",
            },
        )
        direct = explainer(torch.ones(b.num_nodes, 1), ei, pos=b.pos, batch=b.batch, features=b.x)
    assert torch.allclose(got, direct.node_mask.view(-1))


def test_pgexplainer_is_fit_then_scores_points_from_its_edge_masks():
    model, b = tiny(), random_batch()
    algo = get_explainer("pgexplainer", epochs=3)
    with pytest.raises(ConfigError, match="must be fit"):
        algo(model, b)
    algo.fit(model, [b, random_batch(seed=2)])
    # trained on batches of 3 graphs with the size coefficient per graph (per_graph_coeffs)
    assert algo._explainer.algorithm.coeffs["edge_size"] == pytest.approx(0.05 / 3)
    s = algo(model, b).scores
    assert s.shape == (b.num_nodes,) and ((s > 0) & (s < 1)).all()
    again = get_explainer("pgexplainer", epochs=3).fit(model, [b, random_batch(seed=2)])
    assert torch.equal(again(model, b).scores, s)  # seeded
    # a point's score is the mean mask of its edges (both ends)
    ei = _graph(model, b)
    mask = algo._explainer(
        torch.ones(b.num_nodes, 1),
        ei,
        target=(model(b, edge_index=ei) > 0).float(),
        pos=b.pos,
        batch=b.batch,
        features=b.x,
    ).edge_mask.detach()
    point = 4
    mine = (ei[0] == point) | (ei[1] == point)
    weights = (ei[0] == point).float() + (ei[1] == point).float()
    assert s[point] == pytest.approx(float((mask * weights)[mine].sum() / weights.sum()), rel=1e-5)


def test_pgexplainer_batch_loss_is_the_mean_of_its_graphs_losses():
    # PyG sums the size term over the edges it is given and averages the prediction loss over
    # graphs; its graph-level use (and the paper's loss) is one graph per call. hepx trains on
    # batches with per_graph_coeffs: the batch's loss must be the mean of the per-graph losses.
    from torch_geometric.data import Batch
    from torch_geometric.explain import Explainer, PGExplainer

    from hepx.explain.algorithm.library import per_graph_coeffs

    model = tiny()
    g0, g1 = random_batch(sizes=(9,), seed=4), random_batch(sizes=(9,), seed=5)
    both = Batch.from_data_list([g0.get_example(0), g1.get_example(0)])
    wrapper = ExistenceModel(model)

    def call(b, coeffs):
        ei = _graph(model, b)
        kwargs = {"pos": b.pos, "batch": b.batch, "features": b.x}
        with torch.no_grad():
            target = (wrapper(torch.ones(b.num_nodes, 1), ei, **kwargs) > 0).float()
        algo.coeffs = coeffs
        return algo.train(0, wrapper, torch.ones(b.num_nodes, 1), ei, target=target, **kwargs), ei

    torch.manual_seed(0)
    algo = PGExplainer(epochs=1, lr=0.0)  # no step: every call sees the same network
    Explainer(wrapper, algo, explanation_type="phenomenon", edge_mask_type="object",
              model_config={"mode": "binary_classification", "task_level": "graph",
                            "return_type": "raw"})  # fmt: skip
    # bias 1/2 takes the concrete relaxation's noise out: log(1/2) - log(1/2) = 0
    batched, ei = call(both, {**per_graph_coeffs(0.05, 2), "bias": 0.5})
    assert per_graph_coeffs(0.05, 2)["edge_size"] == 0.025
    per_graph = {**PGExplainer.coeffs, "edge_size": 0.05, "bias": 0.5}
    loss0, ei0 = call(g0, per_graph)
    loss1, ei1 = call(g1, per_graph)
    assert ei0.shape[1] == ei1.shape[1] and ei.shape[1] == 2 * ei0.shape[1]  # equal entropy weights
    assert batched == pytest.approx((loss0 + loss1) / 2, rel=1e-5)
    # PyG's coefficients as given, a batch of two graphs weights the size term twice
    unscaled, _ = call(both, per_graph)
    assert unscaled > batched + 1e-3
