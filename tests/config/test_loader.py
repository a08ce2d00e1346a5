"""Loading YAML configs safely: no Python objects, no aliases, bounded, includes checked."""

import pytest

from hepx.config import apply_overrides, load_yaml
from hepx.errors import ConfigError


def test_includes_are_merged_and_a_cycle_is_named(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 5, seed: 1}\n")
    (tmp_path / "run.yaml").write_text("include: base.yaml\ntrain: {epochs: 7}\n")
    assert load_yaml(tmp_path / "run.yaml") == {"train": {"epochs": 7, "seed": 1}}
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: [base.yaml, a.yaml]\n")
    with pytest.raises(ConfigError, match=r"include cycle \(.*a.yaml -> .*b.yaml -> .*a.yaml\)"):
        load_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: {file: base.yaml}\n")
    with pytest.raises(ConfigError, match="'include' must be a file name or a list"):
        load_yaml(tmp_path / "c.yaml")


def test_directories_binary_and_huge_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, expected a YAML config file"):
        load_yaml(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0\)"):
        load_yaml(tmp_path / "bin.yaml")
    (tmp_path / "big.yaml").write_text("a: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large for a config file"):
        load_yaml(tmp_path / "big.yaml")


def test_aliases_and_python_tags_are_refused(tmp_path):
    (tmp_path / "alias.yaml").write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(ConfigError, match=r"line 2: YAML aliases \(\*x\) are not allowed"):
        load_yaml(tmp_path / "alias.yaml")
    (tmp_path / "tag.yaml").write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(tmp_path / "tag.yaml")
    with pytest.raises(ConfigError, match="cannot parse the value"):
        apply_overrides({}, ["train.epochs=*x"])
