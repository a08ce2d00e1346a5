"""Dataset kinds: reader schemas against the readers, detection, inputs, arrays."""

import inspect
import shutil

import awkward as ak
import numpy as np
import pytest

from hepx import post
from hepx.config import find_config, load_yaml
from hepx.config.schema import defaults
from hepx.errors import ConfigError, InputError
from hepx.io import read_generic
from hepx.kinds import KINDS, ActsTrack, DatasetKind, Generic, Tau3Mu, detect_kind, get_kind
from hepx.models import build_model

ACTS = get_kind("actstrack")


def _keyword_only(function):
    params = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


# --------------------------------------------------------------------------- the registry


def test_get_kind():
    assert set(KINDS) == {"actstrack", "tau3mu", "generic"}
    assert isinstance(KINDS["actstrack"], ActsTrack) and isinstance(KINDS["tau3mu"], Tau3Mu)
    assert isinstance(KINDS["generic"], Generic)
    assert all(get_kind(name) is kind and kind.name == name for name, kind in KINDS.items())
    assert get_kind(KINDS["tau3mu"]) is KINDS["tau3mu"]
    with pytest.raises(
        ConfigError, match=r"unknown dataset kind 'cms' \(known: actstrack, tau3mu, generic\)"
    ):
        get_kind("cms")
    assert repr(ACTS) == "<dataset kind actstrack>"


# --------------------------------------------------------------------------- reader options


@pytest.mark.parametrize("name", sorted(KINDS))
def test_reader_schema_is_the_readers_signature(name):
    kind = get_kind(name)
    reader = _keyword_only(kind.reader())
    schema = {key: field.default for key, field in kind.reader_schema.items()}
    assert set(schema) == set(reader)
    assert schema == reader
    # each documented default is a valid value of its own field
    assert kind.reader_options(defaults(kind.reader_schema)) == defaults(kind.reader_schema)


def test_reader_options_are_checked_and_only_given_keys_kept():
    tau = get_kind("tau3mu")
    assert tau.reader_options({"min_hits": 2}) == {"min_hits": 2}
    assert tau.reader_options(None) == {}
    with pytest.raises(ConfigError) as err:
        ACTS.reader_options({"mass_window": "big"})
    assert (
        str(err.value)
        == "reader options for actstrack 'mass_window' must be a positive number, got 'big'"
    )
    with pytest.raises(
        ConfigError, match=r"^reader options for tau3mu: unknown key 'min_hit' \(allowed: tree, "
    ):
        tau.reader_options({"min_hit": 2})
    with pytest.raises(
        ConfigError,
        match=r"^cfg.yaml 'tracks_per_event' must be null or a positive integer, got 0$",
    ):
        ACTS.reader_options({"tracks_per_event": 0}, where="cfg.yaml")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_shipped_convert_config_spells_out_the_reader_defaults(name):
    """``hepx/configs/convert/<kind>.yaml`` documents the reader: each of its values is the
    reader's default, so converting with it is converting without it."""
    kind = get_kind(name)
    reader = load_yaml(find_config(f"convert/{name}"))["reader"]
    assert reader and kind.reader_options(reader) == reader
    params = _keyword_only(kind.reader())
    for key, value in reader.items():
        default = params[key]
        assert (tuple(value) if isinstance(value, list) else value) == default, key


# --------------------------------------------------------------------------- detection


def test_detect_kind_of_reader_and_annotated_events(acts_events, cms_events):
    assert detect_kind(acts_events) is KINDS["actstrack"]
    assert detect_kind(cms_events) is KINDS["tau3mu"]
    assert post.detect_kind(acts_events) == "actstrack" and post.detect_kind(cms_events) == "tau3mu"
    scored = post.annotate(cms_events, np.ones(int(ak.sum(ak.num(cms_events.hits)))))
    assert detect_kind(scored) is KINDS["tau3mu"]
    assert ACTS.matches(acts_events) and not ACTS.matches(cms_events)
    assert get_kind("tau3mu").matches(cms_events) and not get_kind("tau3mu").matches(acts_events)


def test_detect_kind_refuses_other_events(synmol_parquet, cms_events):
    with pytest.raises(InputError, match="no 'hits' field: not the output of a hepx reader"):
        detect_kind(read_generic(synmol_parquet))
    bare = ak.zip({"hits": ak.zip({"eta": cms_events.hits.eta})}, depth_limit=1)
    with pytest.raises(InputError, match=r"neither ActsTrack .* nor Tau3Mu"):
        detect_kind(bare)


# --------------------------------------------------------------------------- inputs


def test_actstrack_input_items_pair_hits_with_particles(acts_raw, tmp_path):
    pair = (acts_raw / "hits.root", acts_raw / "particles.root")
    assert ACTS.input_items([acts_raw]) == [pair]
    assert ACTS.input_items([acts_raw / "hits.root"]) == [pair]
    assert ACTS.output_name(pair) == acts_raw.name  # the directory names a hits.root
    assert ACTS.item_paths(pair) == list(pair)
    assert all(p.is_absolute() for p in ACTS.absolute(pair))
    # other particles file names of ACTS versions are found too
    run = tmp_path / "run7"
    run.mkdir()
    shutil.copy(acts_raw / "hits.root", run / "run7_hits.root")
    shutil.copy(acts_raw / "particles.root", run / "particles_simulation.root")
    (item,) = ACTS.input_items([run / "run7_hits.root"])
    assert item == (run / "run7_hits.root", run / "particles_simulation.root")
    assert ACTS.output_name(item) == "run7_hits"


def test_actstrack_input_items_refuse_what_is_not_acts(acts_raw, cms_ntuple, tmp_path):
    with pytest.raises(InputError) as err:
        ACTS.input_items([cms_ntuple])
    message = str(err.value)
    assert message == f"{cms_ntuple} is a CMS muon ntuple (tau3mu), not ACTS hits (actstrack)"
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(acts_raw / "hits.root", lonely / "hits.root")
    with pytest.raises(
        InputError, match=r"no particles file next to hits\.root \(looked for particles\.root, "
    ):
        ACTS.input_items([lonely])
    with pytest.raises(InputError, match="no such file"):
        ACTS.input_items([tmp_path / "missing"])
    with pytest.raises(InputError, match="no input files given"):
        ACTS.input_items([])


def test_file_inputs_of_the_other_kinds(cms_ntuple, acts_raw, tmp_path):
    tau = get_kind("tau3mu")
    assert tau.input_items([cms_ntuple]) == [cms_ntuple]
    assert tau.output_name(cms_ntuple) == "cms"
    with pytest.raises(InputError, match="is a directory; Tau3Mu inputs are files"):
        tau.input_items([tmp_path])
    tau.check_input(cms_ntuple, {})  # a CMS ntuple is a Tau3Mu input
    with pytest.raises(InputError):
        tau.check_input(acts_raw / "hits.root", {})
    ACTS.check_input((acts_raw / "hits.root", acts_raw / "particles.root"), {})


# --------------------------------------------------------------------------- arrays


def test_arrays_have_the_kinds_dimensions(acts_events, cms_events, synmol_parquet):
    for kind, events in ((ACTS, acts_events), (get_kind("tau3mu"), cms_events)):
        arrays = kind.to_arrays(events)
        meta = arrays.meta
        assert (meta["kind"], meta["pos_dim"], meta["x_dim"]) == (
            kind.name,
            kind.pos_dim,
            kind.x_dim,
        )
        assert arrays.point["pos"].shape == (int(ak.sum(ak.num(events.hits))), kind.pos_dim)
        assert arrays.num_samples == len(events)
        np.testing.assert_array_equal(arrays.sample["event_id"], ak.to_numpy(events.event_id))
    generic = get_kind("generic").to_arrays(read_generic(synmol_parquet))
    assert (generic.meta["pos_dim"], generic.meta["x_dim"]) == (3, 1)  # from the data
    assert get_kind("generic").pos_dim is None


def test_kind_properties_used_downstream():
    assert ACTS.scorable and ACTS.has_tracks and get_kind("tau3mu").scorable
    assert not get_kind("tau3mu").has_tracks and not get_kind("generic").scorable
    assert ACTS.profile_groups == ("volume_id", "layer_id")
    assert get_kind("tau3mu").profile_groups == ("station", "ring")
    assert ACTS.experiment[0] == "ACTS" and get_kind("tau3mu").experiment[0] == "CMS"
    # E(3) only for a model built to be E(3) invariant: an EGNN on positions in the global frame
    egnn = build_model({"backbone": "egnn", "method": "plain"}, pos_dim=3, x_dim=0)
    beam = build_model({"backbone": "egnn", "method": "plain", "frame": "beam"}, pos_dim=3, x_dim=0)
    dgcnn = build_model({"backbone": "dgcnn", "method": "plain"}, pos_dim=3, x_dim=0)
    names = {g.name for g in ACTS.robustness_groups(egnn, 3)}
    assert names == {"permutation", "rotation_z", "e3"}
    for model in (beam, dgcnn):
        assert {g.name for g in ACTS.robustness_groups(model, 3)} == {"permutation", "rotation_z"}
    assert {g.name for g in DatasetKind().robustness_groups(beam, 3)} == {
        "permutation",
        "rotation_z",
    }
    assert {g.name for g in get_kind("tau3mu").robustness_groups(egnn, 2)} == {
        "permutation",
        "phi_shift",
    }
    assert {g.name for g in DatasetKind().robustness_groups(egnn, 2)} == {
        "permutation",
        "phi_shift",
    }
