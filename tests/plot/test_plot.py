"""hepx.plot: every plot kind produces a non-empty image; the CLI and its errors."""

import awkward as ak
import numpy as np
import pytest

import hepx.cli
from hepx import plot, post
from hepx.errors import InputError
from hepx.plot.catalogue import PLOT_KINDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def acts(acts_events):
    """The session ActsTrack events annotated with a random importance (signal hits higher),
    LRI-Gaussian-like covariances and a logit."""
    rng = np.random.default_rng(0)
    lab = ak.to_numpy(ak.flatten(acts_events.hits.node_label))
    u = rng.normal(size=(len(lab), 3, 3))
    a = post.annotate(
        acts_events, rng.random(len(lab)) + lab, sigma=u @ u.transpose(0, 2, 1) + np.eye(3)
    )
    return ak.with_field(a, rng.normal(size=len(a)).astype(np.float32), "logit")


@pytest.fixture(scope="module")
def cms(cms_events):
    """The session Tau3Mu events annotated with a random importance (signal hits higher)."""
    lab = ak.to_numpy(ak.flatten(cms_events.hits.node_label))
    return post.annotate(cms_events, np.random.default_rng(2).random(len(lab)) + lab)


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, path


@pytest.mark.parametrize(
    "kind", ["display-xy", "display-rz", "importance", "profile", "track-roc", "axis-angle"]
)
def test_acts_plot_kinds(acts, kind, tmp_path):
    files = plot.make_plots(acts, kind, tmp_path, formats=["png"])
    assert [f.name for f in files] == [f"{kind}.png"]
    _check_png(files[0])


@pytest.mark.parametrize("kind", ["display-etaphi", "importance", "profile"])
def test_cms_plot_kinds(cms, kind, tmp_path):
    files = plot.make_plots(cms, kind, tmp_path, formats=["png"])
    _check_png(files[0])


def test_pdf_and_all(cms, tmp_path):
    files = plot.make_plots(cms, "all", tmp_path, formats=["png"])
    want = sorted(f"{k}.png" for k, (kinds, _) in PLOT_KINDS.items() if "tau3mu" in kinds)
    assert sorted(f.name for f in files) == want
    assert plot.make_plots(cms, "profile", tmp_path, formats=["pdf"]) == [tmp_path / "profile.pdf"]
    pdf = (tmp_path / "profile.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_functions_for_notebooks(acts, cms):
    import matplotlib.pyplot as plt

    _, axes = plt.subplots(1, 3)
    plot.event_display(acts, 0, view="rz", ax=axes[0])
    plot.track_roc(acts, ax=axes[1])
    ax = plot.etaphi_display(cms, ax=axes[2])
    assert ax is axes[2] and len(ax.collections) >= 1
    assert len(axes[0].collections) >= 1 and len(axes[1].lines) == 2
    ax, h = plot.layer_profile(cms, ["sector"])  # new figure with the experiment label
    assert {"CMS", "Phase-2 Simulation"} <= {t.get_text() for t in ax.texts}
    assert h.axes.name == ("group", "hits")
    plt.close("all")


def test_distribution_plots_return_their_hist(acts, cms):
    """The histograms drawn are returned (hist.Hist), filled with every hit."""
    import hist
    import matplotlib.pyplot as plt
    import numpy as np

    for events in (acts, cms):
        _, h = plot.importance_distribution(events)
        assert isinstance(h, hist.Hist) and h.axes.name == ("hits", "importance")
        label = ak.to_numpy(ak.flatten(events.hits.node_label)) > 0
        assert h["signal", :].sum(flow=True) == label.sum()
        assert h["background", :].sum(flow=True) == (~label).sum()
        imp = ak.to_numpy(ak.flatten(events.hits.importance))
        edges = h.axes["importance"].edges
        want, _ = np.histogram(imp[label], bins=edges)
        np.testing.assert_array_equal(h["signal", :].values(), want)
    _, h = plot.axis_angle_hist(acts)
    assert h.axes.name == ("hits", "angle")
    _, h = plot.layer_profile(acts)
    profile = post.group_profile(acts)
    np.testing.assert_allclose(h.view()["value"][:, 0][profile["signal"]["count"] > 0],
                               profile["signal"]["mean"][profile["signal"]["count"] > 0])  # fmt: skip
    plt.close("all")


def test_one_style_signal_red_background_blue(acts):
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from hepx.plot.style import BACKGROUND, SIGNAL

    ax, _ = plot.importance_distribution(acts)
    colours = [mcolors.to_hex(line.get_edgecolor()) for line in ax.patches] + [
        mcolors.to_hex(line.get_color()) for line in ax.lines
    ]
    assert mcolors.to_hex(SIGNAL) in colours and mcolors.to_hex(BACKGROUND) in colours
    ax, _ = plot.layer_profile(acts)
    used = {mcolors.to_hex(c.get_color()) for c in ax.lines}
    assert {mcolors.to_hex(SIGNAL), mcolors.to_hex(BACKGROUND)} <= used
    plt.close("all")


def test_layers_named_as_physicists_name_them(acts):
    import matplotlib.pyplot as plt

    ax, h = plot.layer_profile(acts)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert any(lab.startswith("pixel barrel, layer ") for lab in labels), labels
    assert not any("volume" in lab for lab in labels)  # the Generic detector's volumes
    assert list(h.axes["group"]) == labels
    plt.close("all")


def test_displays_keep_text_off_the_hits_and_say_when_tracks_are_sampled(acts, cms):
    """No text inside the axes; the event and what is shown are the title of the legend, under
    the axes; a display of sampled tracks says so."""
    import matplotlib.pyplot as plt

    for draw, events in ((plot.event_display, acts), (plot.etaphi_display, cms)):
        ax = draw(events)
        inside = [t for t in ax.texts if t.get_position()[1] < 1.0 and 0 < t.get_position()[0] < 1]
        assert not [t.get_text() for t in inside if t.get_transform() == ax.transAxes]
        legend = ax.get_legend()
        assert legend is not None and legend.get_bbox_to_anchor().y0 < ax.bbox.y0
        assert legend.get_title().get_text().startswith("event ")
    sampled = ak.with_field(acts, acts.n_particles + 5, "n_particles")
    ax = plot.event_display(sampled, 0)
    assert "sampled" in ax.get_legend().get_title().get_text()
    plt.close("all")


def test_plot_errors(acts, cms, tmp_path):
    with pytest.raises(InputError, match="is for actstrack"):
        plot.make_plots(cms, "track-roc", tmp_path)
    no_axis = ak.with_field(
        acts, acts.hits[[f for f in acts.hits.fields if f != "axis_angle"]], "hits"
    )
    with pytest.raises(InputError, match="LRI-Gaussian"):
        plot.make_plots(no_axis, "axis-angle", tmp_path)
    with pytest.raises(InputError, match="unknown plot kind"):
        plot.make_plots(acts, "spaghetti", tmp_path)
    with pytest.raises(InputError, match="out of range"):
        plot.event_display(acts, 10_000)
    assert not list(tmp_path.iterdir())


def test_plot_cli(acts, tmp_path, capsys):
    post.write_parquet(tmp_path / "ev.parquet", acts)
    code = hepx.cli.main(
        [
            "plot",
            str(tmp_path / "ev.parquet"),
            "--kind",
            "importance",
            "--kind",
            "track-roc",
            "--out",
            str(tmp_path / "img"),
            "--format",
            "png",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "img").iterdir()) == [
        "importance.png",
        "track-roc.png",
    ]
    capsys.readouterr()
    # bad input: one line, exit code 2 (hepx.cli.main turns the InputError into it)
    assert hepx.cli.main(["plot", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and err.count("\n") == 1
    assert hepx.cli.main(["plot", str(tmp_path / "img"), "--out", str(tmp_path / "x")]) == 2
    assert "hepx score" in capsys.readouterr().err
    with pytest.raises(InputError, match="no such file"):
        plot.load_events(tmp_path / "nothing")
    with pytest.raises(InputError, match="hepx score"):
        plot.load_events(tmp_path / "img")
    assert not (tmp_path / "x").exists()
