"""The command line under hostile input: one line on stderr, exit code 2, nothing
half-written, nothing a user had moved or lost."""

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import uproot

from hepx.cli import main
from hepx.errors import InputError
from hepx.io import read_cms_muon
from hepx.run import RunLayout


def _fails(argv, capsys, *, contains=()) -> str:
    """Run ``hepx ARGV``; it must exit 2 with one stderr line naming the problem."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hepx: error: ") and err.count("\n") == 1, err
    for text in contains:
        assert text in err, (text, err)
    return err


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- outputs


def test_convert_refuses_to_replace_a_users_file(cms_ntuple, tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("years of work")
    _fails(
        ["convert", "tau3mu", cms_ntuple, "--out", precious],
        capsys,
        contains=("precious.txt exists and is a file", "--overwrite"),
    )
    assert precious.read_text() == "years of work"
    assert _listing(tmp_path) == ["precious.txt"]  # no hidden temporary either


def test_convert_refuses_a_symlink_and_a_foreign_directory(cms_ntuple, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "thesis.tex").write_text("chapter 1")
    link = tmp_path / "link"
    link.symlink_to(target)
    _fails(["convert", "tau3mu", cms_ntuple, "--out", link], capsys, contains=("symbolic link",))
    _fails(["convert", "tau3mu", cms_ntuple, "--out", target], capsys, contains=("did not write",))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert _listing(target) == ["thesis.tex"]
    assert _listing(tmp_path) == ["elsewhere", "link"]


def test_convert_replaces_its_own_dataset_and_with_overwrite_anything(cms_ntuple, tmp_path, capsys):
    out = tmp_path / "ds"
    for _ in range(2):  # a hepx dataset is hepx's to replace
        assert main(["convert", "tau3mu", str(cms_ntuple), "--out", str(out)]) == 0
    old = tmp_path / "old.txt"
    old.write_text("x")
    assert main(["convert", "tau3mu", str(cms_ntuple), "--out", str(old), "--overwrite"]) == 0
    assert (old / "manifest.json").exists()
    assert _listing(tmp_path) == ["ds", "old.txt"]


def test_simulate_and_plot_keep_a_users_files_in_an_existing_directory(
    tau_lri_run, cms_ntuple, tmp_path, capsys
):
    """simulate and plot write files into a directory: a file of the same name that is already
    there (directly or through a linked directory) is refused, not replaced."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "ntuple.root").write_text("mine")
    _fails(
        ["simulate", "tau3mu", "--events", 5, "--out", home],
        capsys,
        contains=("ntuple.root exists", "--overwrite"),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "hits.root").write_text("mine too")
    (tmp_path / "link").symlink_to(elsewhere)
    _fails(["simulate", "actstrack", "--events", 2, "--out", tmp_path / "link"], capsys)
    scored = tmp_path / "scored"
    assert main(["score", str(tau_lri_run), str(cms_ntuple), "--out", str(scored)]) == 0
    (home / "importance.png").write_text("my figure")
    capsys.readouterr()
    plot = ["plot", scored, "--kind", "importance", "--format", "png", "--out", home]
    _fails(plot, capsys, contains=("importance.png exists", "--overwrite"))
    assert _listing(home) == ["importance.png", "ntuple.root"]
    assert (home / "ntuple.root").read_text() == "mine"
    assert (home / "importance.png").read_text() == "my figure"
    assert _listing(elsewhere) == ["hits.root"]
    assert (elsewhere / "hits.root").read_text() == "mine too"
    assert main([str(a) for a in [*plot, "--overwrite"]]) == 0
    assert (home / "importance.png").read_bytes().startswith(b"\x89PNG")


def test_convert_keeps_what_a_user_puts_at_the_output_while_it_runs(
    cms_ntuple, tmp_path, capsys, monkeypatch
):
    """The output is checked again just before the rename: a file or a directory the user
    created meanwhile stays, this run's output is discarded."""
    import importlib

    conv = importlib.import_module("hepx.data.convert")
    real = conv.convert_one
    out = tmp_path / "ds"
    for create in (lambda: out.write_text("user data"), lambda: out.mkdir()):

        def user_acts_midway(task, create=create):
            real(task)
            create()
            if out.is_dir():
                (out / "notes.txt").write_text("mine")

        monkeypatch.setattr(conv, "convert_one", user_acts_midway)
        _fails(["convert", "tau3mu", cms_ntuple, "--out", out], capsys, contains=("ds exists",))
        assert _listing(tmp_path) == ["ds"]  # no temporary left behind
        if out.is_dir():
            assert _listing(out) == ["notes.txt"]
        else:
            assert out.read_text() == "user data"
            out.unlink()


def test_outputs_below_a_regular_file(cms_ntuple, tau_dataset, tau_lri_run, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    below = blocker / "sub"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps({**_tiny_tau3mu(tau_dataset)}))
    commands = [
        ["convert", "tau3mu", cms_ntuple, "--out", below],
        ["simulate", "tau3mu", "--events", 10, "--out", below],
        ["simulate", "actstrack", "--events", 2, "--out", below],
        ["train", cfg, "--out", below, "--no-progress"],
        ["score", tau_lri_run, cms_ntuple, "--out", below, "--no-progress"],
        ["evaluate", tau_lri_run, "--out", below, "--no-robustness", "--no-sanity"],
    ]
    for argv in commands:
        _fails(argv, capsys, contains=("afile is a file",))
    scored = tmp_path / "scored"
    assert main(["score", str(tau_lri_run), str(cms_ntuple), "--out", str(scored)]) == 0
    _fails(["plot", scored, "--out", below], capsys, contains=("afile is a file",))
    assert blocker.read_text() == "x"
    assert _listing(tmp_path) == ["afile", "run.yaml", "scored"]


def _tiny_tau3mu(dataset) -> dict:
    from tiny_runs import tiny_tau3mu_config

    return tiny_tau3mu_config(dataset)


def test_train_refuses_someone_elses_directory_and_removes_a_failed_new_one(
    tau_dataset, tmp_path, capsys, monkeypatch
):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps(_tiny_tau3mu(tau_dataset)))
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    _fails(["train", cfg, "--out", home], capsys, contains=("not a hepx run",))
    assert _listing(home) == ["notes.txt"]

    def stopped(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("hepx.training.loop.FitLoop.run", stopped)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 130
    assert not (tmp_path / "run").exists()  # no run/config.yaml left behind


# --------------------------------------------------------------------------- config files


def test_config_include_cycle_directory_and_encoding(tau_dataset, tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("include: b.yaml\n")
    (tmp_path / "b.yaml").write_text("include: a.yaml\n")
    _fails(["train", tmp_path / "a.yaml", "--out", tmp_path / "r"], capsys, contains=("cycle",))
    (tmp_path / "c.yaml").write_text("include: sub\n")
    (tmp_path / "sub").mkdir()
    _fails(["train", tmp_path / "c.yaml", "--out", tmp_path / "r"], capsys, contains=("directory",))
    (tmp_path / "d.yaml").write_bytes("model: {backbone: égnn}\n".encode("latin-1"))
    _fails(["train", tmp_path / "d.yaml", "--out", tmp_path / "r"], capsys, contains=("not UTF-8",))
    assert not (tmp_path / "r").exists()


def test_a_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path, capsys):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 400
    err = _fails(["train", bomb, "--out", tmp_path / "r"], capsys, contains=("aliases",))
    assert len(err) < 300
    err = _fails(
        ["convert", "tau3mu", "x.root", "--out", tmp_path / "o", "--config", bomb],
        capsys,
        contains=("aliases",),
    )
    assert len(err) < 300


def test_an_overlong_value_is_cut_in_the_message(tmp_path, capsys):
    cfg = tmp_path / "long.yaml"
    cfg.write_text("model: {backbone: " + "x" * 100_000 + "}\n")
    err = _fails(["train", cfg, "--out", tmp_path / "r"], capsys, contains=("backbone",))
    assert len(err) < 400


# --------------------------------------------------------------------------- checkpoints


def _damaged_copy(run: Path, tmp_path: Path, drop: str) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("best", "last"):
        path = RunLayout(copy).checkpoint(name)
        state = torch.load(path, weights_only=True)
        state.pop(drop)
        torch.save(state, path)
    return copy


def test_checkpoint_with_the_marker_but_missing_keys(tau_lri_run, cms_ntuple, tmp_path, capsys):
    import hepx
    from hepx.errors import CheckpointError

    run = _damaged_copy(tau_lri_run, tmp_path, "config")
    _fails(
        ["score", run, cms_ntuple, "--out", tmp_path / "s"],
        capsys,
        contains=("damaged hepx checkpoint", "missing config"),
    )
    with pytest.raises(CheckpointError, match="missing config"):
        hepx.load(run)
    assert not (tmp_path / "s").exists()


def test_resume_from_a_checkpoint_without_its_loop_state(tau_lri_run, tmp_path, capsys):
    run = _damaged_copy(tau_lri_run, tmp_path, "extra")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text((run / "config.yaml").read_text())
    _fails(
        ["train", cfg, "--out", run, "--resume", "--set", "train.epochs=2"],
        capsys,
        contains=("cannot resume from it", "training history"),
    )


def test_a_pickle_payload_is_named_not_run(tmp_path, capsys, cms_ntuple):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    for name in ("best", "last"):
        (run / "checkpoints" / f"{name}.pt").write_bytes(payload)
    err = _fails(
        ["score", run, cms_ntuple, "--out", tmp_path / "s"],
        capsys,
        contains=("refused", "os.system", "never unpickles"),
    )
    assert "weights_only" not in err and "PyTorch" not in err
    assert not marker.exists()


# --------------------------------------------------------------------------- data files


def test_per_hit_branch_written_per_event(tau_lri_run, tmp_path, capsys):
    import cms_files as cf

    rng = np.random.default_rng(1)
    counts, fields, is_sig = cf.random_hits(rng, 12)
    path = tmp_path / "flat.root"
    cf.write_cms(path, counts, fields, is_sig.astype(int))
    with uproot.open(path) as f:
        arrays = f["Ntuplizer/MuonTrackTree"].arrays(library="ak")
    columns = {k: arrays[k] for k in arrays.fields if k != "n_mu_hit"}
    columns["mu_hit_bend"] = np.arange(len(arrays), dtype=np.int16)  # one value per event
    with uproot.recreate(path) as f:
        f.mktree("Ntuplizer/MuonTrackTree", {k: v.type for k, v in _typed(columns).items()})
        f["Ntuplizer/MuonTrackTree"].extend(_typed(columns))
    _fails(
        ["convert", "tau3mu", path, "--out", tmp_path / "ds"],
        capsys,
        contains=("mu_hit_bend holds one value per entry",),
    )
    _fails(
        ["score", tau_lri_run, path, "--out", tmp_path / "scored"],
        capsys,
        contains=("mu_hit_bend holds one value per entry",),
    )
    with pytest.raises(InputError, match="mu_hit_bend holds one value per entry"):
        read_cms_muon(path)
    assert _listing(tmp_path) == ["flat.root"]


def _typed(columns):
    import awkward as ak

    return {k: ak.Array(v) for k, v in columns.items()}


def test_nonfinite_hits_are_refused_by_convert(tmp_path, capsys):
    import cms_files as cf

    rng = np.random.default_rng(2)
    counts, fields, is_sig = cf.random_hits(rng, 30)
    selected = np.flatnonzero(
        (fields["station"] == 1) & (fields["neighbor"] == 0) & (fields["type"] != 0)
    )
    fields["sim_eta"][selected[:3]] = np.nan
    fields["sim_phi"][selected[5]] = np.inf
    path = tmp_path / "nan.root"
    cf.write_cms(path, counts, fields, is_sig.astype(int))
    _fails(
        ["convert", "tau3mu", path, "--out", tmp_path / "ds"],
        capsys,
        contains=(str(path), "mu_hit_sim_eta", "3 non-finite", "nonfinite: drop"),
    )
    assert _listing(tmp_path) == ["nan.root"]
    reader = tmp_path / "drop.yaml"
    reader.write_text("reader: {nonfinite: drop}\n")
    assert main(["convert", "tau3mu", str(path), "--out", str(tmp_path / "ds"), "--config",
                 str(reader)]) == 0  # fmt: skip
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["reports"][0]["dropped_nonfinite_hits"] == 4
    arrays = np.load(tmp_path / "ds" / "arrays.npz")
    assert np.isfinite(arrays["pos"]).all()


def test_truncated_rntuple_empty_and_foreign_files(cms_ntuple, tmp_path, capsys):
    data = cms_ntuple.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(data[: int(len(data) * 0.99)])
    _fails(["convert", "tau3mu", cut, "--out", tmp_path / "a"], capsys, contains=("truncated",))
    rn = tmp_path / "rn.root"
    with uproot.recreate(rn) as f:
        f.mkrntuple("Events", {"x": np.arange(3.0)})
    _fails(["convert", "tau3mu", rn, "--out", tmp_path / "b"], capsys, contains=("RNTuple",))
    empty = tmp_path / "empty.root"
    import cms_files as cf

    counts, fields, is_sig = cf.random_hits(np.random.default_rng(0), 6)
    cf.write_cms(empty, counts[:0], {k: v[:0] for k, v in fields.items()}, is_sig[:0])
    _fails(["convert", "tau3mu", empty, "--out", tmp_path / "c"], capsys, contains=("no entries",))
    _fails(
        ["convert", "actstrack", cms_ntuple, "--out", tmp_path / "d"],
        capsys,
        contains=("CMS", "not ACTS hits"),
    )
    _fails(
        ["convert", "actstrack", rn, "--out", tmp_path / "e"],
        capsys,
        contains=("RNTuple Events", "expected ACTS hits"),
    )
    assert _listing(tmp_path) == ["cut.root", "empty.root", "rn.root"]


def test_a_foreign_root_file_given_as_acts_hits_is_named(foreign_root, tmp_path, capsys):
    err = _fails(["convert", "actstrack", foreign_root, "--out", tmp_path / "ds"], capsys)
    assert "a ROOT file with trees events; expected ACTS hits" in err
    assert "no particles file" not in err
    assert _listing(tmp_path) == []


def test_corrupt_parquet_and_escaping_manifest_for_plot(tau_lri_run, cms_ntuple, tmp_path, capsys):
    scored = tmp_path / "scored"
    assert main(["score", str(tau_lri_run), str(cms_ntuple), "--out", str(scored)]) == 0
    capsys.readouterr()
    manifest = json.loads((scored / "manifest.json").read_text())
    parquet = scored / manifest["outputs"][0]["parquet"]
    outside = tmp_path / "outside.parquet"
    shutil.copy(parquet, outside)
    parquet.write_bytes(parquet.read_bytes()[:200])
    _fails(["plot", scored, "--out", tmp_path / "p"], capsys, contains=("not a readable Parquet",))
    manifest["outputs"][0]["parquet"] = "../outside.parquet"
    (scored / "manifest.json").write_text(json.dumps(manifest))
    _fails(["plot", scored, "--out", tmp_path / "p"], capsys, contains=("not a file of",))
    assert not (tmp_path / "p").exists()


def test_damaged_dataset_manifests(tau_dataset, tmp_path, capsys):
    from tiny_runs import tiny_tau3mu_config

    for name, content in (("list", [1, 2]), ("fields", {"format": "hepx-pointcloud"})):
        ds = tmp_path / name
        shutil.copytree(tau_dataset, ds)
        if isinstance(content, dict):
            manifest = json.loads((ds / "manifest.json").read_text())
            del manifest["point_fields"]
            content = manifest
        (ds / "manifest.json").write_text(json.dumps(content))
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(json.dumps(tiny_tau3mu_config(ds)))
        expected = "a manifest is a JSON object" if name == "list" else "no 'point_fields'"
        _fails(["train", cfg, "--out", tmp_path / f"run_{name}"], capsys, contains=(expected,))


# --------------------------------------------------------------------------- signals


def test_sigterm_exits_cleanly_and_leaves_nothing(cms_ntuple, tmp_path, capsys, monkeypatch):
    import importlib

    conv = importlib.import_module("hepx.data.convert")
    real = conv.convert_one

    def terminated_midway(task):
        real(task)  # a part is on disk now
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(conv, "convert_one", terminated_midway)
    assert main(["convert", "tau3mu", str(cms_ntuple), "--out", str(tmp_path / "ds")]) == 143
    assert "terminated" in capsys.readouterr().err
    assert _listing(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_during_simulate_leaves_no_directory_it_created(tmp_path, capsys, monkeypatch):
    import importlib

    tau = importlib.import_module("hepx.sim.tau3mu")

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(tau, "_write", terminated)
    argv = ["simulate", "tau3mu", "--events", "5", "--out", str(tmp_path / "new" / "sim")]
    assert main(argv) == 143
    assert "terminated" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # its parent, created for it, too
    existing = tmp_path / "mine"
    existing.mkdir()
    argv[-1] = str(existing)
    assert main(argv) == 143
    assert existing.is_dir()  # a directory the user had is kept, even empty


def test_a_truncated_checkpoint_is_named_without_torchs_advice(
    tau_lri_run, cms_ntuple, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(tau_lri_run, run)
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:3000])
    err = _fails(
        ["score", run, cms_ntuple, "--out", tmp_path / "s"],
        capsys,
        contains=("best.pt: not a readable hepx checkpoint", "PytorchStreamReader failed"),
    )
    assert "internal" not in err and err.rstrip().endswith(")")
    assert _listing(tmp_path) == ["run"]


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_under_the_dask_executor_is_one_line(tmp_path_factory, tmp_path, signum, code):
    """Cancelled dask futures are not logged with tracebacks; one line, nothing left."""
    import subprocess
    import sys
    import time

    from hepx.sim import simulate_actstrack

    raw = tmp_path_factory.mktemp("dask_signal") / "acts"
    if not (raw / "hits.root").exists():
        simulate_actstrack(raw, events=1500, seed=4, progress=False)
    cfg = tmp_path / "reader.yaml"
    cfg.write_text("reader: {step_size: 2000}\n")  # small chunks: the signal finds them running
    inputs = [raw] * 8
    cmd = [sys.executable, "-m", "hepx.cli", "convert", "actstrack", *map(str, inputs)]
    cmd += ["--out", str(tmp_path / "ds"), "--config", str(cfg), "--executor", "dask"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "--workers", "1"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".ds.tmp-") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.2)
    time.sleep(1)  # the cluster is up and converting
    proc.send_signal(signum)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and "nothing half-written was kept" in err, err
    assert _listing(tmp_path) == ["reader.yaml"]


def test_a_dataset_edited_to_hold_nan_is_named_at_training(tau_dataset, tmp_path, capsys):
    from tiny_runs import tiny_tau3mu_config

    ds = tmp_path / "ds"
    shutil.copytree(tau_dataset, ds)
    with np.load(ds / "arrays.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    data["pos"][3, 0] = np.nan
    data["pos"][5, 1] = np.inf
    np.savez(ds / "arrays.npz", **data)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps(tiny_tau3mu_config(ds)))
    _fails(
        ["train", cfg, "--out", tmp_path / "run"],
        capsys,
        contains=("ds/arrays.npz: point field 'pos' holds 2 NaN or infinite values",),
    )
    assert not (tmp_path / "run").exists()
