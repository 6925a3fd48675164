"""data_prep.make_many_files: short segments, their concatenation and shifted references."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.make_many_files import make_many_files
from kwsos.errors import KwsosError
from kwsos.events import read_events

SR = 16000


def _sources(root: Path) -> Path:
    """Three 3 s recordings; every sample holds its index in the stream of all three (/2e5,
    below full scale), so a segment tells where it was cut; one 0.2 s event per second, named
    after its second."""
    (root / "test").mkdir(parents=True)
    rows, refs = [["file", "duration"]], [["filename", "onset", "offset", "event_label"]]
    for i in range(3):
        x = (np.arange(3 * SR) + i * 3 * SR) / 2e5
        sf.write(str(root / "test" / f"t{i}.wav"), x.astype(np.float32), SR, subtype="FLOAT")
        rows.append([f"test/t{i}.wav", "3.0"])
        refs += [[f"test/t{i}.wav", f"{s + 0.4}", f"{s + 0.6}", f"s{3 * i + s}"] for s in range(3)]
    for name, table in (("test_manifest.csv", rows), ("test_reference.csv", refs)):
        with open(root / name, "w", newline="") as fh:
            csv.writer(fh).writerows(table)
    return root / "test_manifest.csv"


def test_segments_concatenation_and_references(tmp_path):
    manifest = _sources(tmp_path)
    out = tmp_path / "many"
    paths = make_many_files(manifest, out, n=12, min_s=1.0, max_s=2.0, seed=3)
    assert [p.name for p in paths] == [f"seg_{i:04d}.wav" for i in range(12)]
    ref = read_events(out / "reference.csv")
    cat_ref = read_events(out / "concatenated.csv")
    assert len(ref) == len(cat_ref) > 0
    cat, _ = sf.read(str(out / "concatenated.wav"), dtype="float64")
    t0, segs = 0.0, {}
    for p in paths:
        x, sr = sf.read(str(p), dtype="float64")
        assert sr == SR and 1.0 <= len(x) / SR <= 2.0
        np.testing.assert_allclose(cat[int(round(t0 * SR)) : int(round(t0 * SR)) + len(x)], x)
        segs[p.name] = (x, t0)
        t0 += len(x) / SR
    assert len(cat) == int(round(t0 * SR))
    for e, c in zip(ref, cat_ref, strict=True):
        x, start = segs[Path(e.filename).name]
        assert 0 <= e.onset < e.offset <= len(x) / SR
        # the stream time of the segment's first sample + the onset is the source event's time
        stream_s = x[0] * 2e5 / SR + e.onset
        assert abs(stream_s - round(stream_s - 0.4) - 0.4) < 2e-3
        assert e.label == f"s{round(stream_s - 0.4)}"
        assert c.label == e.label and abs(c.onset - (start + e.onset)) < 2e-3
    # PCM_16 keeps the ramp only to 1/32768; the assertions above allow for that


def test_bad_arguments(tmp_path):
    manifest = _sources(tmp_path)
    with pytest.raises(KwsosError, match="min-s"):
        make_many_files(manifest, tmp_path / "o", n=3, min_s=3, max_s=2)
    with pytest.raises(KwsosError, match="less than"):
        make_many_files(manifest, tmp_path / "o", n=3, min_s=1, max_s=60)
    with pytest.raises(KwsosError, match="not found"):
        make_many_files(tmp_path / "nope.csv", tmp_path / "o")
