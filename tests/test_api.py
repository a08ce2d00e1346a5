"""The notebook API: hepx.load(run).explain(events) on reader arrays."""

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
from torch_geometric.loader import DataLoader

import hepx
from hepx.data import load_dataset
from hepx.errors import CheckpointError, InputError
from hepx.inference import predict


def test_load_explain_predict(tau_lri_run, tau_dataset, cms_events):
    model = hepx.load(tau_lri_run)
    assert model.kind == "tau3mu" and model.method == "lri_bernoulli"
    assert model.reader_options == {"min_signal_hits": 1}  # recorded with the training data
    events = cms_events  # read with the same options
    out = model.explain(events)
    assert len(out) == len(events)
    assert ak.all(ak.num(out.hits.importance) == ak.num(events.hits))
    assert ak.all((out.hits.importance >= 0) & (out.hits.importance <= 1))
    np.testing.assert_allclose(model.predict(events), out.prob.to_numpy(), atol=1e-5)
    # the same numbers as the training code's own prediction over the cached dataset
    ds = load_dataset(tau_dataset)
    ref = predict(model.model, DataLoader(ds, batch_size=64))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out.hits.importance)), ref.scores, atol=1e-5)
    np.testing.assert_array_equal(out.event_id.to_numpy(), ref.event_id)
    # batches capped by hits give the same numbers
    small = model.explain(events, max_points=40)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(small.hits.importance)),
        ak.to_numpy(ak.flatten(out.hits.importance)),
        atol=1e-5,
    )
    np.testing.assert_allclose(model.predict(events, max_points=40), out.prob.to_numpy(), atol=1e-5)


def test_load_refuses_bad_input(tau_lri_run, acts_events, tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory"):
        hepx.load(tmp_path / "nothing")
    with pytest.raises(InputError, match="actstrack events but the model was trained on tau3mu"):
        hepx.load(tau_lri_run).explain(acts_events)


def test_import_is_lazy():
    code = "import sys, hepx; print(any(m in sys.modules for m in ('torch', 'uproot', 'numba')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )
