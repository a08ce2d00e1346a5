"""hepx explain / hepx plot on tiny trained runs: outputs, agreement with predict(), bad input."""

import argparse
import json

import acts_files as af
import awkward as ak
import cms_files as cf
import numpy as np
import pytest
import torch
import uproot
from torch_geometric.loader import DataLoader

from hepx.data import convert, load_dataset
from hepx.errors import HepxError
from hepx.plot.cli import register_cli as register_plot
from hepx.post import read_root
from hepx.post.pipeline import explain_files, load_explained
from hepx.post.pipeline import register_cli as register_explain
from hepx.training import load_checkpoint, model_from_checkpoint, predict, train

MODEL = {"backbone": "egnn", "hidden_channels": 8, "num_layers": 2}


def _main(argv):
    """What hepx.cli.main does with the registered commands: HepxError -> exit code 2."""
    parser = argparse.ArgumentParser(prog="hepx")
    sub = parser.add_subparsers(dest="command", required=True)
    register_explain(sub)
    register_plot(sub)
    args = parser.parse_args([str(a) for a in argv])
    try:
        args.func(args)
    except HepxError:
        return 2
    return 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("explain")
    (d / "acts").mkdir()
    af.write_acts(d / "acts", af.build_events(24))
    convert("actstrack", [d / "acts"], d / "ds_acts")
    counts, fields, is_sig = cf.random_hits(np.random.default_rng(3), 80)
    cf.write_cms(d / "cms.root", counts, fields, is_sig.astype(int))
    convert("tau3mu", [d / "cms.root"], d / "ds_cms", reader_options={"min_signal_hits": 1})
    tr = {"epochs": 1, "batch_size": 16}
    train(
        {
            "dataset": {"path": str(d / "ds_acts")},
            "model": {**MODEL, "method": "lri_gaussian", "pos_scale": 0.001},
            "train": tr,
            "eval": {"precision_k": [4]},
        },
        d / "run_acts",
        progress=False,
    )
    train(
        {
            "dataset": {"path": str(d / "ds_cms")},
            "model": {**MODEL, "method": "lri_bernoulli"},
            "train": tr,
            "eval": {"precision_k": [3]},
        },
        d / "run_cms",
        progress=False,
    )
    train(
        {
            "dataset": {"path": str(d / "ds_cms")},
            "model": {**MODEL, "method": "plain"},
            "train": tr,
            "eval": {"precision_k": [3]},
        },
        d / "run_plain",
        progress=False,
    )
    return d


def _predicted(run, ds):
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    model = model_from_checkpoint(state)
    return predict(model, DataLoader(load_dataset(ds), batch_size=7))


def test_explain_acts(runs, tmp_path):
    out = tmp_path / "ex"
    assert _main(["explain", runs / "run_acts", runs / "acts", "--out", out, "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "actstrack" and manifest["method"] == "lri_gaussian"
    (entry,) = manifest["outputs"]
    trees = read_root(out / entry["root"])
    with uproot.open(runs / "acts" / "hits.root") as f:
        n_entries = f["hits"].num_entries
        eid = f["hits"]["event_id"].array(library="np")
    flat = trees["hits_importance"]
    assert len(flat) == n_entries == entry["hits_in_file"]  # friend of the input hits tree
    assert ak.all(flat.event_id == eid)
    _, ev = load_explained(out)
    # same importance and logits as predict() over the converted dataset
    pred = _predicted(runs / "run_acts", runs / "ds_acts")
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.hits.importance)), pred["scores"], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(ak.to_numpy(ev.logit), pred["logits"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ak.to_numpy(ev.event_id), pred["event_id"])
    hit_index = ak.to_numpy(ak.flatten(ev.hits.hit_index))
    np.testing.assert_array_equal(
        ak.to_numpy(flat.importance)[hit_index], ak.to_numpy(ak.flatten(ev.hits.importance))
    )
    ang = ak.to_numpy(ak.flatten(ev.hits.axis_angle))
    assert len(ang) == len(hit_index) and np.all((ang >= 0) & (ang <= 90))
    assert {"importance", "importance_max", "importance_topk"} <= set(ev.tracks.fields)
    prob = ak.to_numpy(trees["events"].prob)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-pred["logits"])), rtol=1e-5)
    # plots straight from the explain output
    img = tmp_path / "img"
    assert _main(["plot", out, "--kind", "axis-angle", "--out", img, "--format", "png"]) == 0
    assert sorted(p.name for p in img.iterdir()) == ["axis-angle.png"]
    assert all(p.stat().st_size > 1000 for p in img.iterdir())


def test_explain_cms_chunked(runs, tmp_path):
    out = tmp_path / "ex"
    m = explain_files(
        runs / "run_cms", [runs / "cms.root"], out, chunk_entries=9, batch_size=5, progress=False
    )
    assert m["reader_options"]["min_signal_hits"] == 1  # recorded with the run's dataset
    (entry,) = m["outputs"]
    trees = read_root(out / entry["root"])
    fr = trees["mu_hit_importance"]
    with uproot.open(runs / "cms.root") as f:
        counts = f["Ntuplizer/MuonTrackTree"]["n_mu_hit"].array(library="np")
    assert len(fr) == len(counts) and ak.all(fr.n_mu_hit == counts)
    _, ev = load_explained(out)
    pred = _predicted(runs / "run_cms", runs / "ds_cms")
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.hits.importance)), pred["scores"], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(ak.to_numpy(ev.event_id), pred["event_id"])
    got = fr.mu_hit_importance[ev.entry][ev.hits.hit_index]
    assert ak.all(got == ev.hits.importance)
    assert int(ak.sum(fr.scored)) == len(ev) == entry["events"]
    np.testing.assert_allclose(ak.to_numpy(fr.logit[ev.entry]), ak.to_numpy(ev.logit))


def test_explain_bad_input(runs, tmp_path):
    out = tmp_path / "ex"
    # a model applied to the wrong kind of file, both ways
    assert _main(["explain", runs / "run_acts", runs / "cms.root", "--out", out]) == 2
    assert _main(["explain", runs / "run_cms", runs / "acts" / "hits.root", "--out", out]) == 2
    with pytest.raises(HepxError, match=r"trained on tau3mu.*ACTS simulation output"):
        explain_files(runs / "run_cms", [runs / "acts" / "hits.root"], out)
    with pytest.raises(HepxError, match=r"trained on actstrack.*CMS muon ntuple"):
        explain_files(runs / "run_acts", [runs / "cms.root"], out)
    # a plain model has no importance; a missing run; an unknown explainer
    with pytest.raises(HepxError, match="plain model"):
        explain_files(runs / "run_plain", [runs / "cms.root"], out)
    assert _main(["explain", tmp_path / "norun", runs / "cms.root", "--out", out]) == 2
    with pytest.raises(HepxError, match=r"unknown explanation method 'nope'.*gradcam"):
        explain_files(runs / "run_plain", [runs / "cms.root"], out, explainer="nope")
    # a good input followed by a bad one: nothing at all is written
    assert (
        _main(
            [
                "explain",
                runs / "run_cms",
                runs / "cms.root",
                tmp_path / "missing.root",
                "--out",
                out,
            ]
        )
        == 2
    )
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_explainer_hook_and_overwrite(runs, tmp_path):
    out = tmp_path / "ex"
    calls = []

    def norm_of_pos(model, batch):  # a stand-in post-hoc explainer
        calls.append(batch.num_graphs)
        return torch.linalg.norm(batch.pos, dim=1)

    m = explain_files(runs / "run_plain", [runs / "cms.root"], out, explainer=norm_of_pos)
    assert calls and m["explainer"] == "callable"
    _, ev = load_explained(out)
    want = np.hypot(ak.flatten(ev.hits.eta), ak.flatten(ev.hits.phi))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev.hits.importance)), want, rtol=1e-5)
    assert _main(["explain", runs / "run_cms", runs / "cms.root", "--out", out]) == 2  # exists
    assert _main(["explain", runs / "run_cms", runs / "cms.root", "--out", out, "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["method"] == "lri_bernoulli"


def test_explain_plain_run_with_posthoc_method(runs, tmp_path):
    """hepx's post-hoc methods are usable by name for plain classifiers."""
    from hepx.post.pipeline import load_explained

    explain_files(
        runs / "run_plain", [runs / "cms.root"], tmp_path / "o", explainer="gradgeo", progress=False
    )
    _, events = load_explained(tmp_path / "o")
    imp = ak.to_numpy(ak.flatten(events.hits.importance))
    assert len(imp) > 0 and np.all(np.isfinite(imp)) and np.all(imp >= 0) and imp.std() > 0
