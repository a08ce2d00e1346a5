"""hepx score (alias hepx explain) / hepx plot on the session's tiny trained runs: outputs,
agreement with predict(), bad input."""

import json

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from torch_geometric.loader import DataLoader

import hepx.cli
from hepx.data import load_dataset
from hepx.errors import HepxError
from hepx.inference import predict
from hepx.post import read_root
from hepx.post.physics import DEFAULT_TOPK
from hepx.run import load_checkpoint, model_from_checkpoint
from hepx.scoring import load_scored, score_files


def _main(argv):
    """``hepx ARGV``: HepxError -> exit code 2."""
    return hepx.cli.main([str(a) for a in argv])


def _predicted(run, ds):
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    model = model_from_checkpoint(state)
    return predict(model, DataLoader(load_dataset(ds), batch_size=7))


def test_score_acts(acts_lri_gaussian_run, acts_raw, acts_dataset, tmp_path):
    out = tmp_path / "ex"
    run = acts_lri_gaussian_run
    assert _main(["score", run, acts_raw, "--out", out, "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "actstrack" and manifest["method"] == "lri_gaussian"
    (entry,) = manifest["outputs"]
    trees = read_root(out / entry["root"])
    with uproot.open(acts_raw / "hits.root") as f:
        n_entries = f["hits"].num_entries
        eid = f["hits"]["event_id"].array(library="np")
    flat = trees["hits_importance"]
    assert len(flat) == n_entries == entry["hits_in_file"]  # friend of the input hits tree
    assert ak.all(flat.event_id == eid)
    _, ev = load_scored(out)
    # same importance and logits as predict() over the converted dataset
    pred = _predicted(run, acts_dataset)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.hits.importance)), pred.scores, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(ak.to_numpy(ev.logit), pred.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ak.to_numpy(ev.event_id), pred.event_id)
    hit_index = ak.to_numpy(ak.flatten(ev.hits.hit_index))
    np.testing.assert_array_equal(
        ak.to_numpy(flat.importance)[hit_index], ak.to_numpy(ak.flatten(ev.hits.importance))
    )
    ang = ak.to_numpy(ak.flatten(ev.hits.axis_angle))
    assert len(ang) == len(hit_index) and np.all((ang >= 0) & (ang <= 90))
    assert {"importance", "importance_max", "importance_topk"} <= set(ev.tracks.fields)
    prob = ak.to_numpy(trees["events"].prob)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-pred.logits)), rtol=1e-5)
    # plots straight from the score output
    img = tmp_path / "img"
    assert _main(["plot", out, "--kind", "axis-angle", "--out", img, "--format", "png"]) == 0
    assert sorted(p.name for p in img.iterdir()) == ["axis-angle.png"]
    assert all(p.stat().st_size > 1000 for p in img.iterdir())


def test_score_cms_chunked(tau_lri_run, cms_ntuple, tau_dataset, tmp_path):
    out = tmp_path / "ex"
    m = score_files(tau_lri_run, [cms_ntuple], out, chunk_entries=9, batch_size=5, progress=False)
    assert m["reader_options"]["min_signal_hits"] == 1  # recorded with the run's dataset
    (entry,) = m["outputs"]
    trees = read_root(out / entry["root"])
    fr = trees["mu_hit_importance"]
    with uproot.open(cms_ntuple) as f:
        counts = f["Ntuplizer/MuonTrackTree"]["n_mu_hit"].array(library="np")
    assert len(fr) == len(counts) and ak.all(fr.n_mu_hit == counts)
    _, ev = load_scored(out)
    pred = _predicted(tau_lri_run, tau_dataset)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.hits.importance)), pred.scores, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(ak.to_numpy(ev.event_id), pred.event_id)
    got = fr.mu_hit_importance[ev.entry][ev.hits.hit_index]
    assert ak.all(got == ev.hits.importance)
    assert int(ak.sum(fr.scored)) == len(ev) == entry["events"]
    np.testing.assert_allclose(ak.to_numpy(fr.logit[ev.entry]), ak.to_numpy(ev.logit))
    # the event-level tree is a friend of the input tree too: a score (or NaN) per input event
    events = trees["events"]
    assert len(events) == len(counts)
    np.testing.assert_array_equal(ak.to_numpy(events.event_id), np.arange(len(counts)))
    np.testing.assert_array_equal(ak.to_numpy(events.scored), ak.to_numpy(fr.scored))
    scored = ak.to_numpy(events.scored)
    assert np.all(np.isnan(ak.to_numpy(events.prob)[~scored]))
    assert np.all(ak.to_numpy(events.label)[~scored] == -1)
    np.testing.assert_allclose(
        ak.to_numpy(events.logit)[ak.to_numpy(ev.entry)], ak.to_numpy(ev.logit)
    )
    np.testing.assert_array_equal(
        ak.to_numpy(events.n_hits)[ak.to_numpy(ev.entry)], ak.to_numpy(ak.num(ev.hits))
    )


def test_score_bad_input(
    acts_lri_gaussian_run, tau_lri_run, tau_plain_run, acts_raw, cms_ntuple, tmp_path
):
    out = tmp_path / "ex"
    # a model applied to the wrong kind of file, both ways
    assert _main(["score", acts_lri_gaussian_run, cms_ntuple, "--out", out]) == 2
    assert _main(["score", tau_lri_run, acts_raw / "hits.root", "--out", out]) == 2
    with pytest.raises(HepxError, match=r"trained on tau3mu.*ACTS simulation output"):
        score_files(tau_lri_run, [acts_raw / "hits.root"], out)
    with pytest.raises(HepxError, match=r"trained on actstrack.*CMS muon ntuple"):
        score_files(acts_lri_gaussian_run, [cms_ntuple], out)
    # a plain model has no importance; a missing run; an unknown explainer
    with pytest.raises(HepxError, match="plain model"):
        score_files(tau_plain_run, [cms_ntuple], out)
    assert _main(["score", tmp_path / "norun", cms_ntuple, "--out", out]) == 2
    with pytest.raises(HepxError, match=r"unknown explanation method 'nope'.*gradcam"):
        score_files(tau_plain_run, [cms_ntuple], out, explainer="nope")
    # a good input followed by a bad one: nothing at all is written
    assert _main(["score", tau_lri_run, cms_ntuple, tmp_path / "missing.root", "--out", out]) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_explainer_hook_and_overwrite(tau_lri_run, tau_plain_run, cms_ntuple, tmp_path):
    out = tmp_path / "ex"
    calls = []

    def norm_of_pos(model, batch):  # a stand-in post-hoc explainer
        calls.append(batch.num_graphs)
        return torch.linalg.norm(batch.pos, dim=1)

    m = score_files(tau_plain_run, [cms_ntuple], out, explainer=norm_of_pos)
    assert calls and m["explainer"] == "callable"
    _, ev = load_scored(out)
    want = np.hypot(ak.flatten(ev.hits.eta), ak.flatten(ev.hits.phi))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev.hits.importance)), want, rtol=1e-5)
    # (the command's alias `hepx explain` as well)
    assert _main(["explain", tau_lri_run, cms_ntuple, "--out", out]) == 2  # exists
    assert _main(["explain", tau_lri_run, cms_ntuple, "--out", out, "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["method"] == "lri_bernoulli"


def test_score_plain_run_with_posthoc_method(tau_plain_run, cms_ntuple, tmp_path):
    """hepx's post-hoc methods are usable by name for plain classifiers."""
    m = score_files(
        tau_plain_run, [cms_ntuple], tmp_path / "o", explainer="gradgeo", progress=False
    )
    assert m["explainer"] == "gradgeo" and m["method"] == "plain"
    _, events = load_scored(tmp_path / "o")
    imp = ak.to_numpy(ak.flatten(events.hits.importance))
    assert len(imp) > 0 and np.all(np.isfinite(imp)) and np.all(imp >= 0) and imp.std() > 0


def test_a_registered_explainer_is_usable_by_name(tau_plain_run, cms_ntuple, tmp_path, monkeypatch):
    """hepx.explain.registry.register_explainer makes a name usable by `hepx score`."""
    from hepx.explain import registry

    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))  # restored after the test
    registry.register_explainer("eta_abs", lambda model, batch: batch.pos[:, 0].abs())
    out = tmp_path / "o"
    argv = ["score", tau_plain_run, cms_ntuple, "--out", out, "--explainer", "eta_abs"]
    assert _main([*argv, "--no-progress"]) == 0
    manifest, events = load_scored(out)
    assert manifest["explainer"] == "eta_abs" and manifest["method"] == "plain"
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(events.hits.importance)),
        np.abs(ak.to_numpy(ak.flatten(events.hits.eta))),
        rtol=1e-6,
    )


# --------------------------------------------------------------------------- batches by points


def test_predict_by_points_equals_predict_by_events(acts_lri_gaussian_run, acts_dataset):
    """Eval mode: an event's outputs do not depend on the events batched with it."""
    from hepx.data import load_arrays
    from hepx.data.batching import point_counts
    from hepx.errors import ConfigError

    ds = load_dataset(acts_dataset)
    model = model_from_checkpoint(load_checkpoint(acts_lri_gaussian_run / "checkpoints/best.pt"))
    by_events = predict(model, DataLoader(ds, batch_size=48))  # one batch
    # each point's index in its input, as converted (not shifted by the batch's collation)
    np.testing.assert_array_equal(by_events.hit_index, load_arrays(acts_dataset).point["hit_index"])
    budget = int(2.5 * np.median(point_counts(ds)))  # about two events per batch
    for got in (predict(model, ds, max_points=budget), predict(model, ds, max_points=1)):
        np.testing.assert_array_equal(got.event_id, by_events.event_id)
        np.testing.assert_array_equal(got.hit_index, by_events.hit_index)
        np.testing.assert_array_equal(got.batch, by_events.batch)
        np.testing.assert_allclose(got.logits, by_events.logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.scores, by_events.scores, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.sigma, by_events.sigma, rtol=1e-4, atol=1e-7)
        assert got.loss == pytest.approx(by_events.loss, rel=1e-5)
    # a dataset batched by events here is the loader's
    same = predict(model, ds, batch_size=7)
    np.testing.assert_array_equal(
        same.logits, _predicted(acts_lri_gaussian_run, acts_dataset).logits
    )
    with pytest.raises(ConfigError, match="these are batches already"):
        predict(model, DataLoader(ds, batch_size=4), max_points=100)


def _spy_batches(monkeypatch):
    """Record ``(events, hits)`` of every batch the scorer runs."""
    import hepx.scoring.events as events_module

    seen, original = [], events_module.predict

    def spy(model, batches, **kw):
        def recorded():
            for b in batches:
                seen.append((int(b.num_graphs), int(b.num_nodes)))
                yield b

        return original(model, recorded(), **kw)

    monkeypatch.setattr(events_module, "predict", spy)
    return seen


def test_score_with_max_points_same_scores_batches_within_budget(
    acts_lri_gaussian_run, acts_raw, tmp_path, monkeypatch
):
    seen = _spy_batches(monkeypatch)
    plain, budget = tmp_path / "plain", 200  # ActsTrack toy events: 60-90 hits
    assert _main(["score", acts_lri_gaussian_run, acts_raw, "--out", plain, "--no-progress"]) == 0
    assert max(s for s, _ in seen) == 48  # --batch-size 64 events: the whole file at once
    seen.clear()
    out = tmp_path / "budget"
    argv = ["score", acts_lri_gaussian_run, acts_raw, "--out", out, "--max-points", budget]
    assert _main([*argv, "--no-progress"]) == 0
    assert sum(s for s, _ in seen) == 48 and len(seen) > 1
    assert all(p <= budget or s == 1 for s, p in seen)
    _, a = load_scored(plain)
    _, b = load_scored(out)
    np.testing.assert_array_equal(ak.to_numpy(b.event_id), ak.to_numpy(a.event_id))
    for field in ("importance", "axis_angle"):
        np.testing.assert_allclose(
            ak.to_numpy(ak.flatten(b.hits[field])),
            ak.to_numpy(ak.flatten(a.hits[field])),
            rtol=1e-5,
            atol=1e-5,
        )
    np.testing.assert_allclose(ak.to_numpy(b.logit), ak.to_numpy(a.logit), rtol=1e-5, atol=1e-5)
    assert (
        _main(
            ["score", acts_lri_gaussian_run, acts_raw, "--out", tmp_path / "x", "--max-points", 0]
        )
        == 2
    )


def test_score_chunked_with_max_points(tau_lri_run, cms_ntuple, tau_dataset, tmp_path, monkeypatch):
    seen = _spy_batches(monkeypatch)
    out = tmp_path / "ex"
    m = score_files(
        tau_lri_run, [cms_ntuple], out, chunk_entries=9, batch_size=5, max_points=12, progress=False
    )
    assert sum(s for s, _ in seen) == m["outputs"][0]["events"]
    assert all(p <= 12 or s == 1 for s, p in seen) and all(s <= 5 for s, _ in seen)
    _, ev = load_scored(out)
    pred = _predicted(tau_lri_run, tau_dataset)
    np.testing.assert_array_equal(ak.to_numpy(ev.event_id), pred.event_id)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(ev.hits.importance)), pred.scores, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(ak.to_numpy(ev.logit), pred.logits, rtol=1e-5, atol=1e-6)


def test_score_acts_in_small_chunks_same_friend_trees(acts_lri_gaussian_run, tmp_path):
    """An ActsTrack file scored in chunks of whole events (reader option step_size) gives the
    friend trees and events of the whole-file scoring: the same entries, ids, labels and NaNs,
    the same scores up to float rounding (the model's batches differ)."""
    from hepx.io.acts import ActsChunks
    from hepx.sim import simulate_actstrack

    raw = tmp_path / "raw"
    simulate_actstrack(raw, events=16, seed=2, event_order="shuffled", chunk_size=8, pileup=1)
    step = 150
    assert (
        len(list(ActsChunks(raw / "hits.root", raw / "particles.root", step_size=step).plan())) > 3
    )
    config = tmp_path / "reader.yaml"
    config.write_text(f"reader: {{step_size: {step}}}\n")
    outs = {}
    for name, extra in (("whole", []), ("small", ["--config", config])):
        outs[name] = tmp_path / name
        argv = ["score", acts_lri_gaussian_run, raw, "--out", outs[name], "--no-progress", *extra]
        assert _main(argv) == 0
    manifests = {k: json.loads((v / "manifest.json").read_text()) for k, v in outs.items()}
    assert manifests["small"]["reader_options"]["step_size"] == step
    (whole,), (small,) = manifests["whole"]["outputs"], manifests["small"]["outputs"]
    assert whole == small  # files, counts
    trees = {k: read_root(outs[k] / whole["root"]) for k in outs}
    assert set(trees["whole"]) == set(trees["small"]) >= {"hits_importance", "events", "tracks"}
    events = {k: load_scored(v)[1] for k, v in outs.items()}
    # The top-k fraction is a step function of the scores: where the event's k-th and
    # (k+1)-th scores are within rounding, either hit may enter the top set.
    steady = _topk_beyond_rounding(events["whole"], events["small"], k=DEFAULT_TOPK)
    assert steady.sum() >= len(steady) // 2
    np.testing.assert_array_equal(trees["whole"]["tracks"].event_id, events["whole"].event_id)
    only_steady = np.where(steady, 1.0, np.nan).astype(np.float32)  # NaN: not compared
    for name in ("whole", "small"):
        ev, tracks = events[name], trees[name]["tracks"]
        topk = ev.tracks.importance_topk * only_steady
        events[name] = ak.with_field(ev, topk, ("tracks", "importance_topk"))
        topk = tracks.track_importance_topk * only_steady
        trees[name]["tracks"] = ak.with_field(tracks, topk, "track_importance_topk")
    for tree in trees["whole"]:
        a, b = trees["whole"][tree], trees["small"][tree]
        assert a.fields == b.fields and len(a) == len(b), tree
        _assert_same_values(a, b)
    assert len(trees["small"]["hits_importance"]) == whole["hits_in_file"]
    _assert_same_values(events["whole"], events["small"])


def _topk_beyond_rounding(a, b, k):
    """bool [events]: the gap between the k-th and (k+1)-th largest hit scores is more than
    twice the largest score difference between the two scorings of the event."""
    rounding = ak.to_numpy(ak.max(abs(a.hits.importance - b.hits.importance), axis=1))
    ranked = ak.sort(a.hits.importance, axis=1, ascending=False)
    padded = ak.to_numpy(ak.fill_none(ak.pad_none(ranked, k + 1, axis=1, clip=True), np.nan))
    gap = padded[:, k - 1] - padded[:, k]
    return (ak.num(ranked, axis=1).to_numpy() <= k) | (gap > 2 * rounding)


def _assert_same_values(a, b, where=""):
    """Records field by field: integers exactly, floats to 1e-5 with NaN at the same places."""
    if a.fields:
        assert a.fields == b.fields, where
        for field in a.fields:
            _assert_same_values(a[field], b[field], f"{where}.{field}")
        return
    if a.ndim > 1:
        np.testing.assert_array_equal(ak.num(a, axis=1), ak.num(b, axis=1), err_msg=where)
    x, y = (ak.to_numpy(ak.flatten(v, axis=None)) for v in (a, b))
    assert x.dtype == y.dtype, where
    if x.dtype.kind == "f":
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=where)
    else:
        np.testing.assert_array_equal(x, y, err_msg=where)
