"""make_background_pool: the package lists (never a benchmark, reserved or pretraining-class
package) and the segmenter, on small arrays (no network, no apt)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from data_prep import make_alarm_real_bench as rb
from data_prep import make_background_pool as bp
from data_prep import make_real_pretrain as rp


def test_no_background_package_is_a_benchmark_reserved_or_class_package():
    assert set(bp.PACKAGES) == {"supertuxkart-data", "torcs-data"}
    classes = {p.name for p in rp.PACKAGES}
    for name, (licence, files) in bp.PACKAGES.items():
        assert licence and files and len(set(files)) == len(files)
        assert name not in rb.PACKAGES and not rb.is_reserved(name) and name not in classes
        assert "scratch" not in name  # the real benchmark's backgrounds come from scratch
    for name in ("scratch", "lomiri-sounds", "hedgewars-data", "flightgear-data-base",
                 "asterisk-core-sounds-en", "lmms-common", "wesnoth-1.16-data"):  # fmt: skip
        assert bp.is_forbidden(name), name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("scratch", "used by a benchmark, reserved"),
        ("bucklespring-data", "used by a benchmark, reserved"),
        ("lincity-ng-data", "used by a benchmark, reserved"),  # a pretraining class source
        ("openttd-opensfx", "not one of"),
    ],
)
def test_fetch_refuses_before_apt_runs(monkeypatch, tmp_path: Path, name, message):
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match=message):
        bp.fetch(name, tmp_path)
    assert calls == []


def test_segments_of_long_and_short_sounds():
    rng = np.random.default_rng(0)
    n = bp.N
    long = np.arange(n * 20, dtype=np.float64)
    segs = bp.segments(long, rng)
    assert len(segs) == bp.MAX_SEGMENTS and all(len(s) == n for s in segs)
    hop = int(bp.HOP_S * bp.SR)
    assert all(
        int(s[0]) % hop == 0 and np.array_equal(s, long[int(s[0]) : int(s[0]) + n]) for s in segs
    )
    short = np.sin(np.arange(n // 3) / 7.0)
    segs = bp.segments(short, rng)
    assert len(segs) == 4 and all(len(s) == n for s in segs)
    assert np.abs(np.concatenate(segs)).max() <= 1.0 + 1e-12  # the cross-fade never amplifies
