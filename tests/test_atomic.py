"""Atomic outputs: nothing a user had is moved or lost, nothing half-written is left."""

import os
import subprocess
import sys
import time

import pytest

from hepx.atomic import (
    atomic_dir,
    atomic_file,
    check_creatable,
    check_output,
    make_dir,
    remove_stale_temporaries,
)
from hepx.errors import InputError


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_check_output_refuses_a_users_file_and_leaves_it_alone(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("years of work")
    with pytest.raises(InputError, match=r"precious.txt exists and is a file; .* --overwrite"):
        check_output(precious)
    assert precious.read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_check_output_refuses_a_symlink_and_a_foreign_directory(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        check_output(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="a directory hepx did not write"):
        check_output(target, is_ours=lambda p: False)
    check_output(target, is_ours=lambda p: True)  # ours: may be replaced
    check_output(link, overwrite=True)  # the user said so
    check_output(tmp_path / "new")  # nothing there


def test_below_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match=r"afile is a file; choose another") as info:
        make_dir(tmp_path / "afile" / "sub" / "out")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"cannot create the run directory .*afile is a file"):
        check_creatable(tmp_path / "afile" / "run", what="run directory")
    with pytest.raises(InputError, match="is a file; expected the output directory"):
        check_creatable(tmp_path / "afile")


def test_atomic_dir_replaces_only_after_success_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("failed midway")
    assert (out / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f".out.tmp-{_dead_pid()}-0123abcd"
    dead.mkdir()
    (dead / "arrays.npz").write_bytes(b"half")
    live = tmp_path / f".out.tmp-{os.getpid()}-89abcdef"
    live.mkdir()
    other = tmp_path / f".other.tmp-{_dead_pid()}-0123abcd"  # another output's: not ours
    other.mkdir()
    remove_stale_temporaries(tmp_path / "out")
    assert not dead.exists() and live.exists() and other.exists()
    # and the next atomic write of the output does it by itself
    dead.mkdir()
    with atomic_file(tmp_path / "out") as tmp:
        tmp.write_text("done")
    assert not dead.exists() and (tmp_path / "out").read_text() == "done"


def test_two_writers_racing_for_one_output(tmp_path, monkeypatch):
    """Another process puts its output in place between the check and the rename."""
    out = tmp_path / "out"
    real_replace = os.replace

    def other_writer_first(src, dst):
        if str(dst) == str(out) and not out.exists():
            out.mkdir()
            (out / "theirs").write_text("b")
        return real_replace(src, dst)

    monkeypatch.setattr("hepx.atomic.os.replace", other_writer_first)
    with pytest.raises(InputError, match="written by another process at the same time"):
        with atomic_dir(out) as tmp:
            (tmp / "mine").write_text("a")
    assert sorted(p.name for p in out.iterdir()) == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_live_temporary_is_not_taken_for_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = tmp_path / f".out.tmp-{proc.pid}-0123abcd"
        busy.mkdir()
        remove_stale_temporaries(tmp_path / "out")
        assert busy.exists()
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.01)
    remove_stale_temporaries(tmp_path / "out")
    assert not busy.exists()
