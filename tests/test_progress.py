"""Progress bars: shown on terminals and in notebooks, not in logs; training, inference,
scoring and evaluation draw them."""

import io
import sys

import pytest
from tiny_runs import tiny_config

from hepx import progress
from hepx.training import train


def test_shown_when_asked_on_a_terminal_or_in_a_notebook(monkeypatch):
    assert progress.show_progress(True) and not progress.show_progress(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bar
    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    assert not progress.show_progress(None)
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    assert progress.show_progress(None)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress.show_progress(None)


def test_training_shows_batches_of_each_epoch_and_validation(tau_dataset, tmp_path, capsys):
    cfg = tiny_config(tau_dataset, "tau3mu", "lri_bernoulli")
    train(cfg, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "batch" in err and "validate" in err


@pytest.mark.parametrize("shown", [True, False])
def test_notebook_api_progress(tau_lri_run, cms_events, capsys, shown):
    import hepx

    model = hepx.load(tau_lri_run)
    model.explain(cms_events, progress=shown)
    model.predict(cms_events, progress=shown)
    err = capsys.readouterr().err
    assert ("score tau3mu" in err) is shown


def test_evaluation_shows_methods(tau_plain_run, tmp_path, capsys):
    from hepx.evaluation import evaluate

    evaluate(
        [tau_plain_run],
        tmp_path / "report",
        methods=["gradcam"],
        progress=True,
        robustness=False,
        sanity=False,
    )
    err = capsys.readouterr().err
    assert "evaluate" in err and "gradcam" in err
