"""``hepx simulate actstrack --generator pythia8``: Pythia 8 hard scatter, minimum-bias pileup
pool, the same files as the fast generator; and the pileup option's meaning for both."""

import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from hepx.cli import main
from hepx.data import load_dataset
from hepx.errors import ConfigError
from hepx.sim.actstrack import PAIR_NONE, PAIR_Z, Z_LABEL_MASS, Z_MASS, simulate_actstrack
from hepx.sim.pythia import HardScatter, event_particles, pythia_seed

SEED = 3
KW = {"events": 20, "seed": SEED, "pileup": 5, "pool_size": 30, "progress": False}


@pytest.fixture(scope="module")
def pythia():
    return pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def run(pythia, tmp_path_factory):
    out = tmp_path_factory.mktemp("pythia") / "run"
    truth = simulate_actstrack(out, generator="pythia8", event_order="sorted", **KW)
    return out, truth


def _trees(out) -> tuple[dict, dict]:
    """The hits (flat) and particles (flattened over events) of a run, as numpy arrays."""
    with uproot.open(out / "hits.root") as f:
        hits = f["hits"].arrays(library="np")
    with uproot.open(out / "particles.root") as f:
        per_event = f["particles"].arrays()
    counts = ak.to_numpy(ak.num(per_event["particle_type"]))
    jagged = [k for k in per_event.fields if per_event[k].ndim == 2]
    parts = {k: ak.to_numpy(ak.flatten(per_event[k])) for k in jagged}
    parts["event_id"] = np.repeat(ak.to_numpy(per_event["event_id"]), counts)
    return hits, parts


def _key(seed: int) -> int:
    # the run's hashing key, as hepx.sim.actstrack derives it from the seed
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])


def test_same_seed_gives_the_same_files_for_any_chunking(run, tmp_path):
    out, truth = run
    again = simulate_actstrack(
        tmp_path, generator="pythia8", event_order="sorted", chunk_size=7, **KW
    )
    for name, values in truth.to_dict().items():
        np.testing.assert_array_equal(values, again.to_dict()[name], err_msg=name)
    for a, b in zip(_trees(out), _trees(tmp_path), strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert pythia_seed(_key(SEED), "z", 13) != pythia_seed(_key(SEED + 1), "z", 13)


def test_events_mix_signal_and_background_processes(run):
    _, truth = run
    assert truth.is_signal.any() and not truth.is_signal.all()
    assert set(np.unique(truth.pair_kind)) >= {PAIR_NONE, PAIR_Z}
    _, parts = _trees(run[0])
    assert np.all(np.abs(parts["eta"][parts["vertex_primary"] > 1]) < 4.0)
    pu = parts["vertex_primary"] > 1
    assert np.all(parts["pt"][pu] > 0.1) and np.all(parts["q"] != 0)
    np.testing.assert_array_equal(
        np.bincount(truth.n_particles),
        np.bincount(np.unique(parts["event_id"], return_counts=True)[1]),
    )


def _copy_of(prt, i: int) -> int:
    """The first copy (same id, up the mothers) of record entry ``i``."""
    while prt["id"][prt["mother1"][i]] == prt["id"][i]:
        i = int(prt["mother1"][i])
    return i


def test_signal_leptons_are_the_z_daughters_of_pythias_record(run):
    out, truth = run
    _, parts = _trees(out)
    hard = HardScatter(_key(SEED))  # the same instances, so the same events in the same order
    checked = 0
    for flavour in (11, 13):
        rows = np.flatnonzero((truth.pair_kind == PAIR_Z) & (truth.z_flavour == flavour))
        if len(rows) == 0:
            continue
        batch = hard.batch("z", flavour, len(rows))
        kept = event_particles(batch, parent=23)
        first = kept.offsets[:-1]
        for i, row in enumerate(rows):
            prt = {k: ak.to_numpy(batch["prt"][i][k]) for k in ("id", "mother1", "m")}
            legs = kept.record_index[first[i] : first[i] + 2]
            z = [prt["mother1"][_copy_of(prt, int(j))] for j in legs]
            assert z[0] == z[1] and prt["id"][z[0]] == 23  # both from the same Z / gamma*
            assert 60 < prt["m"][z[0]] < 120
            assert list(prt["id"][legs]) == [flavour, -flavour]  # l- then l+
            # the written leptons are particles 1 and 2 of vertex 1, with Pythia's momenta
            ev = (parts["event_id"] == truth.event_id[row]) & (parts["vertex_primary"] == 1)
            for k, leg in enumerate(legs):
                sel = ev & (parts["particle"] == k + 1)
                p_pythia = [ak.to_numpy(batch["prt"][i]["p"][a])[leg] for a in ("px", "py", "pz")]
                p_file = [parts[a][sel][0] for a in ("px", "py", "pz")]
                np.testing.assert_allclose(p_file, p_pythia, rtol=1e-6, atol=1e-6)
            # the dilepton mass is the truth's, below the Z's by what QED radiation took
            assert truth.pair_mass[row] <= prt["m"][z[0]] + 1e-6
            in_window = abs(truth.pair_mass[row] - Z_LABEL_MASS) < 2.0  # the label rule
            assert truth.z_in_window[row] == in_window
            checked += 1
    assert checked == truth.is_signal.sum() > 3
    assert abs(np.median(truth.z_mass[truth.is_signal]) - Z_MASS) < 5.0  # the Z peak


@pytest.mark.parametrize(("generator", "events", "mu"), [("fast", 400, 4.0), ("pythia8", 150, 3.0)])
def test_pileup_vertices_per_event_are_poisson(generator, events, mu, tmp_path, request):
    if generator == "pythia8":
        request.getfixturevalue("pythia")
    kw = {"events": events, "seed": 8, "pileup": mu, "signal_fraction": 1.0, "progress": False}
    simulate_actstrack(tmp_path, generator=generator, pool_size=30, **kw)
    _, parts = _trees(tmp_path)
    pu = parts["vertex_primary"] > 1
    vertices = np.unique(np.stack([parts["event_id"][pu], parts["vertex_primary"][pu]]), axis=1)
    n = np.bincount(vertices[0], minlength=events)  # pileup vertices of each event
    assert abs(n.mean() - mu) < 4 * np.sqrt(mu / events)
    assert abs(n.var() - mu) < 4 * np.sqrt((mu + 2 * mu**2) / events)
    if generator == "fast":  # about 5 charged particles each, as the option's help says
        assert 4.5 < pu.sum() / n.sum() < 5.5


def test_hepx_convert_actstrack_reads_the_pythia_files(run, tmp_path):
    out, truth = run
    ds = tmp_path / "ds"
    assert main(["-q", "convert", "actstrack", str(out), "--out", str(ds)]) == 0
    data = load_dataset(ds)
    labels = {int(d.event_id): int(d.y) for d in data}
    assert len(labels) == len(truth)
    # positive = a Z in the +-2 GeV window whose two legs left >= 3 hits each
    expected = truth.z_in_window & np.all(truth.pair_n_hits >= 3, axis=1)
    assert [labels[int(e)] for e in truth.event_id] == expected.astype(int).tolist()


def test_without_pythia_the_command_names_the_install_command(tmp_path, capsys, monkeypatch):
    for name in ("pythia8mc", "pythia8"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    out = tmp_path / "never"
    argv = ["simulate", "actstrack", "--generator", "pythia8", "--events", "2", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hepx: error: ")
    assert "pip install 'hepx[pythia]'" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"hepx\[pythia\]"):
        simulate_actstrack(out, events=2, generator="pythia8")
