"""The one config validator (hepx.config.schema), the shipped configs and the run config."""

from pathlib import Path

import pytest
import yaml

from hepx.config import find_config, load_yaml, resolve_run_config, shipped_configs
from hepx.config.run import RUN_SCHEMA, TRAIN_SCHEMA
from hepx.config.schema import ABSENT, Field, defaults, describe, validate
from hepx.config.shipped import shipped_config_dir
from hepx.errors import ConfigError

SCHEMA = {
    "epochs": Field("posint", 100),
    "lr": Field("posnumber", 1e-3),
    "name": Field("str", None, nullable=True),
    "mode": Field("str", "fast", choices=("fast", "slow")),
    "graph": {"k": Field("posint", 5), "loop": Field("bool", True)},
    "pos_dim": Field("posint", ABSENT),
}

SHIPPED = Path(__file__).resolve().parents[2] / "hepx" / "configs"
#: Run configs: one directory per dataset (datasets/ and convert/ hold partial configs).
RUN_CONFIGS = sorted(
    p for p in SHIPPED.glob("*/*.yaml") if p.parent.name not in ("datasets", "convert")
)


# --------------------------------------------------------------------------- the validator


def test_defaults_are_filled_in_nested_sections_too():
    got = validate(SCHEMA, {"epochs": 5, "graph": {"k": 9}}, where="test config")
    assert got == {
        "epochs": 5,
        "lr": 1e-3,
        "name": None,
        "mode": "fast",
        "graph": {"k": 9, "loop": True},
    }
    assert validate(SCHEMA, None, where="w") == defaults(SCHEMA)
    assert defaults(SCHEMA)["graph"] == {"k": 5, "loop": True}


def test_absent_fields_are_left_out_unless_given():
    assert "pos_dim" not in validate(SCHEMA, {}, where="w")
    assert "pos_dim" not in defaults(SCHEMA)
    assert validate(SCHEMA, {"pos_dim": 3}, where="w")["pos_dim"] == 3
    with pytest.raises(ConfigError, match=r"w 'pos_dim' must be a positive integer, got 0"):
        validate(SCHEMA, {"pos_dim": 0}, where="w")
    assert repr(ABSENT) == "(absent)"


def test_unknown_keys_are_refused_with_the_allowed_ones():
    with pytest.raises(
        ConfigError,
        match=r"^test config: unknown key 'epoch' \(allowed: epochs, lr, name, mode, graph, pos_dim\)$",
    ):
        validate(SCHEMA, {"epoch": 3}, where="test config")
    with pytest.raises(ConfigError, match=r"unknown key 'graph\.kk' \(allowed: k, loop\)"):
        validate(SCHEMA, {"graph": {"kk": 3}}, where="test config")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"epochs": "x"}, "w 'epochs' must be a positive integer, got 'x'"),
        ({"epochs": 0}, "w 'epochs' must be a positive integer, got 0"),
        ({"epochs": 2.0}, "w 'epochs' must be a positive integer, got 2.0"),
        ({"epochs": True}, "w 'epochs' must be a positive integer, got True"),  # bool is no int
        ({"lr": -1}, "w 'lr' must be a positive number, got -1"),
        ({"lr": float("nan")}, "w 'lr' must be a positive number, got nan"),
        ({"name": 3}, "w 'name' must be null or a string, got 3"),
        ({"mode": "medium"}, "w 'mode' must be one of fast, slow, got 'medium'"),
        ({"mode": None}, "w 'mode' must be one of fast, slow, got None"),
        ({"graph": {"loop": "yes"}}, "w 'graph.loop' must be true or false, got 'yes'"),
        ({"graph": 5}, "w 'graph' must be a mapping, got 5"),
    ],
)
def test_wrong_values_name_the_key_and_the_expectation(given, message):
    with pytest.raises(ConfigError) as err:
        validate(SCHEMA, given, where="w")
    assert str(err.value) == message


def test_values_are_normalised_and_copied():
    got = validate(SCHEMA, {"lr": 1, "epochs": 3}, where="w")
    assert got["lr"] == 1.0 and isinstance(got["lr"], float)  # float kinds as float
    assert isinstance(got["epochs"], int)
    period = Field("period", None, nullable=True)
    assert period.check([None, 6], "p") == [None, 6.0]
    with pytest.raises(ConfigError, match="'p' must be null or a list of null / positive numbers"):
        period.check([0.0], "'p'")
    listed = Field("list", [1, 2])
    a, b = defaults({"x": listed}), defaults({"x": listed})
    a["x"].append(3)
    assert b["x"] == [1, 2] and listed.default == [1, 2]  # defaults are copies
    given = {"graph": {"k": 2}}
    validate(SCHEMA, given, where="w")["graph"]["k"] = 7
    assert given == {"graph": {"k": 2}}  # the input is not modified


def test_a_value_never_gets_too_long_in_a_message():
    with pytest.raises(ConfigError) as err:
        validate(SCHEMA, {"name": ["x" * 500]}, where="w")
    assert len(str(err.value)) < 150 and str(err.value).endswith("...")


def test_field_kinds_and_descriptions():
    with pytest.raises(ValueError, match="unknown field kind 'integer'"):
        Field("integer", 1)
    assert Field("prob", 0.2).expected() == "a number in [0, 1)"
    assert Field("str", None, choices=("a", "b"), nullable=True).expected() == "null or one of a, b"
    rows = {row[0]: row for row in describe(RUN_SCHEMA)}
    assert rows["train.epochs"] == (
        "train.epochs",
        "a positive integer",
        "100",
        TRAIN_SCHEMA["epochs"].doc,
    )
    assert "model.graph.k" in rows and "model.bernoulli.final_r" in rows


# --------------------------------------------------------------------------- the run config


def test_run_config_messages():
    base = {"dataset": {"path": "data/x"}}
    with pytest.raises(ConfigError) as err:
        resolve_run_config({**base, "train": {"batch_size": "x"}})
    assert str(err.value) == "run config 'train.batch_size' must be a positive integer, got 'x'"
    with pytest.raises(
        ConfigError, match=r"^run config: unknown key 'train\.epoch' \(allowed: epochs, warmup, "
    ):
        resolve_run_config({**base, "train": {"epoch": 3}})
    with pytest.raises(ConfigError) as err:
        resolve_run_config({**base, "model": {"aggr": "sum"}})
    assert (
        str(err.value) == "run config 'model.aggr' must be null or one of mean, add, max, got 'sum'"
    )
    with pytest.raises(ConfigError, match=r"'dataset\.path' is required"):
        resolve_run_config({})
    with pytest.raises(ConfigError, match="must be a mapping with sections dataset, model"):
        resolve_run_config([1, 2])
    with pytest.raises(ConfigError, match=r"'dataset\.split' must have a positive sum"):
        resolve_run_config({"dataset": {"path": "x", "split": [0, 0, 0]}})


def test_run_config_defaults():
    cfg = resolve_run_config({"dataset": {"path": Path("data/x")}})
    assert cfg["dataset"]["path"] == "data/x"  # a string, for YAML and checkpoints
    assert cfg["train"] == defaults(TRAIN_SCHEMA)
    assert cfg["model"]["graph"]["kind"] == "knn" and cfg["eval"]["precision_k"] == [12, 24, 30]
    assert {"pos_dim", "x_dim", "period"}.isdisjoint(cfg["model"])  # recorded by training only


# --------------------------------------------------------------------------- shipped configs


def test_find_config_resolves_shipped_names_and_paths(tmp_path):
    path = find_config("tau3mu/lri_bernoulli_egnn")
    assert path == shipped_config_dir() / "tau3mu" / "lri_bernoulli_egnn.yaml" and path.is_file()
    assert find_config("tau3mu/lri_bernoulli_egnn.yaml") == path
    assert shipped_config_dir().resolve() == SHIPPED.resolve()  # package data of hepx
    own = tmp_path / "mine.yaml"
    own.write_text("model: {backbone: egnn}\n")
    assert find_config(own) == own and find_config(str(own)) == own
    with pytest.raises(ConfigError, match="is a directory, expected a YAML config file"):
        find_config(tmp_path)


def test_unknown_config_name_lists_the_shipped_run_configs():
    with pytest.raises(ConfigError) as err:
        find_config("tau3mu/lri_dirichlet_egnn")
    message = str(err.value)
    assert message.startswith("tau3mu/lri_dirichlet_egnn: no such config file and no shipped")
    listed = message.split("(shipped run configs: ")[1].rstrip(")").split(", ")
    assert listed == [f"{p.parent.name}/{p.stem}" for p in RUN_CONFIGS]
    assert "\n" not in message


def test_shipped_configs_lists_every_yaml():
    names = shipped_configs()
    assert names == sorted(
        p.relative_to(SHIPPED).with_suffix("").as_posix() for p in SHIPPED.rglob("*.yaml")
    )
    assert {"base", "datasets/tau3mu", "convert/actstrack", "actstrack/plain_egnn"} <= set(names)
    # 4 datasets x 3 methods x 3 backbones; GMT-lin / GMT-sam with EGNN on ActsTrack, Tau3Mu
    # and SynMol; PointMask with the 3 backbones on ActsTrack, Tau3Mu and SynMol; plain and
    # LRI-Bernoulli EGNN on ActsTrack full events
    assert len(RUN_CONFIGS) == 36 + 6 + 9 + 2


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_run_config_resolves(path, tmp_path):
    raw = load_yaml(path)
    raw["dataset"]["path"] = str(tmp_path / "data")
    cfg = resolve_run_config(raw)
    method, _, backbone = path.stem.rpartition("_")
    if backbone == "transformer":  # point_transformer
        method, backbone = method.removesuffix("_point"), "point_transformer"
    assert (cfg["model"]["method"], cfg["model"]["backbone"]) == (method, backbone)
    kinds = {"synmol": "generic", "plbind": "generic", "actstrack_full": "actstrack"}
    kind = kinds.get(path.parent.name, path.parent.name)
    assert cfg["dataset"]["kind"] == kind
    assert cfg["train"]["epochs"] > cfg["train"]["warmup"] >= 0
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # plain data (what config.yaml holds)
