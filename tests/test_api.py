"""The notebook API: hepx.load(run).explain(events) on reader arrays."""

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
from tiny_runs import tiny_tau3mu_config

import hepx
from hepx.data import convert
from hepx.errors import CheckpointError, InputError
from hepx.io import read_cms_muon
from hepx.sim import simulate_tau3mu
from hepx.training import predict, train


@pytest.fixture(scope="module")
def tau_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    simulate_tau3mu(d / "sim", events=400, seed=5)
    convert("tau3mu", [d / "sim" / "ntuple.root"], d / "ds")
    cfg = tiny_tau3mu_config(d / "ds")
    train(cfg, d / "run", progress=False)
    return d


def test_load_explain_predict(tau_run):
    model = hepx.load(tau_run / "run")
    assert model.kind == "tau3mu" and model.method == "lri_bernoulli"
    events = read_cms_muon(tau_run / "sim" / "ntuple.root")
    out = model.explain(events)
    assert len(out) == len(events)
    assert ak.all(ak.num(out.hits.importance) == ak.num(events.hits))
    assert ak.all((out.hits.importance >= 0) & (out.hits.importance <= 1))
    np.testing.assert_allclose(model.predict(events), out.prob.to_numpy(), atol=1e-5)
    # the same numbers as the training code's own prediction over the cached dataset
    from torch_geometric.loader import DataLoader

    from hepx.data import load_dataset

    ds = load_dataset(tau_run / "ds")
    ref = predict(model.model, DataLoader(ds, batch_size=64))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(out.hits.importance)), ref["scores"], atol=1e-5
    )
    np.testing.assert_array_equal(out.event_id.to_numpy(), ref["event_id"])


def test_load_refuses_bad_input(tau_run, tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory"):
        hepx.load(tmp_path / "nothing")
    import acts_files as af

    from hepx.io import read_acts

    af.write_acts(tmp_path, af.build_events(6))
    acts = read_acts(tmp_path / "hits.root", tmp_path / "particles.root")
    with pytest.raises(InputError, match="actstrack events but the model was trained on tau3mu"):
        hepx.load(tau_run / "run").explain(acts)


def test_import_is_lazy():
    code = "import sys, hepx; print(any(m in sys.modules for m in ('torch', 'uproot', 'numba')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )
