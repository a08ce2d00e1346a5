"""The ``hepx`` command: help texts, a light parser, the score alias, shipped config names."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hepx.cli
from hepx.cli import COMMANDS, build_parser, main
from hepx.config import shipped_configs

PACKAGE = Path(hepx.cli.__file__).resolve().parents[1]

SUBCOMMANDS = [
    ["simulate"],
    ["simulate", "actstrack"],
    ["simulate", "tau3mu"],
    ["convert"],
    ["train"],
    ["score"],
    ["explain"],
    ["evaluate"],
    ["plot"],
    ["demo"],
]


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_main_help_lists_every_command(capsys):
    out = _help([], capsys)
    assert out.startswith("usage: hepx ")
    for command in ("simulate", "convert", "train", "score", "evaluate", "plot", "demo"):
        assert f"    {command}" in out, command
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert (
        exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hepx {hepx.__version__}"
    )


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_a_help_text(argv, capsys):
    out = _help(argv, capsys)
    name = " ".join(argv).replace("explain", "score")  # argparse shows an alias's main name
    assert out.startswith(f"usage: hepx {name}")
    assert "-h, --help" in out and len(out.splitlines()) > 3


#: The least arguments each command parses with (nothing runs).
MINIMAL_ARGS = {
    ("simulate", "actstrack"): ["--events", "1", "--out", "o"],
    ("simulate", "tau3mu"): ["--events", "1", "--out", "o"],
    ("convert",): ["tau3mu", "in.root", "--out", "o"],
    ("train",): ["tau3mu/plain_egnn", "--out", "o"],
    ("score",): ["RUN", "in.root", "--out", "o"],
    ("evaluate",): ["RUN", "--out", "o"],
    ("plot",): ["DIR", "--out", "o"],
    ("demo",): [],
}


def test_every_command_module_adds_its_parser_and_runs_its_commands():
    names = [m.__name__.rsplit(".", 1)[1] for m in COMMANDS]
    assert names == ["simulate", "convert", "train", "score", "evaluate", "plot", "demo"]
    assert all(callable(m.add_parser) for m in COMMANDS)
    parser = build_parser()
    for command, rest in MINIMAL_ARGS.items():
        func = parser.parse_args([*command, *rest]).func
        assert callable(func) and func.__module__ == f"hepx.cli.{command[0]}", command


def test_building_the_parser_imports_no_torch():
    code = (
        "import sys, hepx.cli; hepx.cli.build_parser(); "
        "heavy = [m for m in ('torch', 'uproot', 'numba', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_explain_is_an_alias_of_score(capsys):
    parser = build_parser()
    argv = ["RUN", "in.root", "--out", "OUT", "--explainer", "gradcam", "--top-k", "signal"]
    score = vars(parser.parse_args(["score", *argv]))
    explain = vars(parser.parse_args(["explain", *argv]))
    assert score.pop("command") == "score" and explain.pop("command") == "explain"
    assert explain == score and score["func"] is hepx.cli.score.run
    # the same options, described by the same help text
    assert _help(["explain"], capsys) == _help(["score"], capsys)


def test_train_with_an_unknown_config_name_exits_2_naming_the_shipped_ones(tmp_path, capsys):
    assert main(["train", "tau3mu/lri_dirichlet_egnn", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hepx: error: tau3mu/lri_dirichlet_egnn:")
    assert "no shipped config of that name" in err
    runs = [n for n in shipped_configs() if n.split("/")[0] in ("actstrack", "tau3mu")]
    assert all(name in err for name in runs)
    assert not (tmp_path / "run").exists()


def test_train_a_shipped_config_by_name(tau_dataset, tmp_path):
    small = ["train.epochs=1", "model.hidden_channels=8", "model.num_layers=2"]
    argv = ["-q", "train", "tau3mu/lri_bernoulli_egnn", "--out", str(tmp_path / "run")]
    argv += ["--set", f"dataset.path={tau_dataset}", "--no-progress"]
    for item in small:
        argv += ["--set", item]
    assert main(argv) == 0
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    # the shipped file's settings (with its includes), the overrides on top
    assert (cfg["model"]["backbone"], cfg["model"]["method"]) == ("egnn", "lri_bernoulli")
    assert cfg["model"]["bernoulli"]["final_r"] == 0.7 and cfg["train"]["info_loss_coef"] == 0.1
    assert cfg["model"]["graph"]["kind"] == "radius" and cfg["eval"]["precision_k"] == [3, 7, 10]
    assert cfg["train"]["epochs"] == 1 and cfg["model"]["hidden_channels"] == 8
    assert cfg["dataset"]["path"] == str(tau_dataset)
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_argparse_outside_the_cli():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    users = [p.relative_to(PACKAGE).as_posix() for p in modules if "argparse" in _imports(p)]
    assert users and all(u.startswith("cli/") for u in users), users
    text_users = [
        p.relative_to(PACKAGE).as_posix()
        for p in modules
        if "argparse" in p.read_text() and not p.relative_to(PACKAGE).as_posix().startswith("cli/")
    ]
    assert text_users == []
