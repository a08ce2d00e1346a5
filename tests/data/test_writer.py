"""The streaming dataset writer: parts on disk, assembled block by block into numpy's npz."""

import json

import numpy as np
import pytest

import hepx.data.writer as writer
from hepx.data import PointCloudArrays, convert, load_arrays, save_arrays
from hepx.data.writer import DatasetPart, write_npz
from hepx.errors import InputError


def _chunk(rng, n_samples, *, x_dim=2) -> PointCloudArrays:
    counts = rng.integers(0, 6, n_samples)
    n = int(counts.sum())
    return PointCloudArrays(
        ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        point={
            "pos": rng.normal(size=(n, 3)).astype(np.float32),
            "x": rng.normal(size=(n, x_dim)).astype(np.float32),
            "node_label": rng.integers(0, 2, n).astype(np.int8),
            "hit_index": np.arange(n, dtype=np.int64),
        },
        sample={
            "y": rng.integers(0, 2, n_samples).astype(np.int8),
            "event_id": rng.integers(0, 1000, n_samples).astype(np.int64),
            "source_file": np.zeros(n_samples, np.int32),
        },
        meta={"kind": "generic", "pos_dim": 3, "x_dim": x_dim},
    )


def test_parts_assemble_into_what_numpy_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "COPY_BLOCK", 64)  # many blocks per field
    rng = np.random.default_rng(0)
    chunks = [_chunk(rng, s) for s in (5, 0, 17, 3)]
    parts = []
    for i, group in enumerate((chunks[:2], chunks[2:])):
        part = DatasetPart(tmp_path / "parts" / str(i))
        for c in group:
            part.append(c)
        part.close({"events_read": 1})
        parts.append(part.directory)
    summary = write_npz(parts, tmp_path / "a.npz")
    assert summary["num_samples"] == 25 and summary["reports"] == [{"events_read": 1}] * 2
    with np.load(tmp_path / "a.npz", allow_pickle=False) as got:
        ptr = got["ptr"]
        assert ptr[0] == 0 and np.all(np.diff(ptr) >= 0) and len(ptr) == 26
        counts = np.concatenate([np.diff(c.ptr) for c in chunks])
        np.testing.assert_array_equal(np.diff(ptr), counts)
        for field in ("pos", "x", "node_label", "hit_index"):
            expected = np.concatenate([c.point[field] for c in chunks])
            assert got[field].dtype == expected.dtype
            np.testing.assert_array_equal(got[field], expected)
        for field in ("y", "event_id", "source_file"):
            np.testing.assert_array_equal(
                got[field], np.concatenate([c.sample[field] for c in chunks])
            )
    # the same data written twice give the same bytes (fixed zip timestamps)
    write_npz(parts, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_chunks_of_other_shapes_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    part = DatasetPart(tmp_path / "p")
    part.append(_chunk(rng, 4))
    with pytest.raises(InputError, match="different x_dim"):
        part.append(_chunk(rng, 4, x_dim=3))
    with pytest.raises(InputError, match="no sample was written"):
        DatasetPart(tmp_path / "q").close()


def test_save_arrays_round_trip_and_no_parts_left(tmp_path):
    arrays = _chunk(np.random.default_rng(2), 30)
    save_arrays(arrays, tmp_path / "ds")
    back = load_arrays(tmp_path / "ds")
    np.testing.assert_array_equal(back.ptr, arrays.ptr)
    np.testing.assert_array_equal(back.point["pos"], arrays.point["pos"])
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["arrays.npz", "manifest.json"]


def test_convert_streams_and_does_not_depend_on_the_chunk(cms_ntuple, tmp_path):
    whole = convert("tau3mu", [cms_ntuple], tmp_path / "whole", reader_options={"min_hits": 2})
    small = convert(
        "tau3mu", [cms_ntuple], tmp_path / "small", reader_options={"min_hits": 2, "step_size": 5}
    )
    assert whole["fingerprint"] == small["fingerprint"]
    assert (tmp_path / "whole" / "arrays.npz").read_bytes() == (
        tmp_path / "small" / "arrays.npz"
    ).read_bytes()
    assert small["num_positive"] == int((load_arrays(tmp_path / "small").sample["y"] > 0).sum())
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["arrays.npz", "manifest.json"]


def test_convert_actstrack_in_small_chunks_gives_the_same_bytes(tmp_path):
    """`hepx convert actstrack` with a small step_size (chunks of whole events) writes the bytes
    of the whole-file conversion, for hits in shuffled and interleaved order."""
    import hepx.cli
    from hepx.sim import simulate_actstrack

    inputs = []
    for order, layout in (("shuffled", "per_event"), ("interleaved", "per_particle")):
        raw = tmp_path / f"raw_{order}"
        simulate_actstrack(
            raw,
            events=20,
            seed=4,
            event_order=order,
            particles_layout=layout,
            chunk_size=7,
            pileup=1,
            progress=False,
        )
        inputs.append(raw)
    manifests = {}
    for name, step in (("whole", 10**9), ("small", 60)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"reader: {{step_size: {step}, tracks_per_event: 4}}\n")
        argv = ["convert", "actstrack", *inputs, "--out", tmp_path / name, "--config", config]
        assert hepx.cli.main([str(a) for a in argv]) == 0
        manifests[name] = json.loads((tmp_path / name / "manifest.json").read_text())
    whole, small = (tmp_path / n / "arrays.npz" for n in ("whole", "small"))
    assert whole.read_bytes() == small.read_bytes()
    assert manifests["whole"]["fingerprint"] == manifests["small"]["fingerprint"]
    assert manifests["whole"]["num_samples"] == 40
