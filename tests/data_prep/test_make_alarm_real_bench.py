"""make_alarm_real_bench: package lists, clip functions, and the layout on a fake source tree
(no network, no apt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import alarm_common as mab
from data_prep import make_alarm_real_bench as rb
from data_prep.prepare_alarm_osc import prepare_alarm_osc, read_manifest

SR = rb.SR


# ------------------------------------------------------------------------------- package lists


def test_benchmark_and_reserved_packages_never_intersect():
    assert len(rb.PACKAGES) == 5
    for pkg in rb.PACKAGES:
        assert not rb.is_reserved(pkg)
    assert rb.is_reserved("asterisk-core-sounds-en-wav")
    assert rb.is_reserved("flightgear-data-base")
    assert rb.is_reserved("hedgewars-data")
    assert not rb.is_reserved("hedgewars")


def test_every_source_is_a_benchmark_package_and_backgrounds_are_not_class_files():
    class_files = set()
    for spec in rb.CLASSES.values():
        for src in spec.sources:
            assert src.package in rb.PACKAGES and src.licence
            class_files.update((src.package, p) for p in src.paths)
    backgrounds = {(s.package, p) for s in rb.BACKGROUNDS for p in s.paths}
    assert backgrounds and not backgrounds & class_files
    assert {s.package for s in rb.BACKGROUNDS} <= set(rb.PACKAGES)
    assert sum(c.known for c in rb.CLASSES.values()) >= 10
    assert set(rb.MIDDLE_UNSEEN) <= {c.name for c in rb.UNKNOWN}


def test_check_package_refuses_reserved_and_foreign_packages():
    rb.check_package("scratch")
    with pytest.raises(ValueError, match="reserved"):
        rb.check_package("bucklespring-data")
    with pytest.raises(ValueError, match="not one of"):
        rb.check_package("supertuxkart-data")


def test_reserved_packages_are_never_downloaded(monkeypatch, tmp_path: Path):
    downloaded: list[str] = []
    monkeypatch.setattr(
        mab, "_download_and_extract", lambda pkg, paths: downloaded.append(pkg.name)
    )
    monkeypatch.setattr(rb, "_wanted", lambda: {"widelands-data": {"x.ogg"}, "scratch": {"y.wav"}})
    with pytest.raises(ValueError, match="reserved"):
        rb.fetch_sources(tmp_path, download=True)
    assert "widelands-data" not in downloaded
    # the real wanted set only asks for the five packages
    monkeypatch.undo()
    monkeypatch.setattr(
        mab, "_download_and_extract", lambda pkg, paths: downloaded.append(pkg.name)
    )
    rb.fetch_sources(tmp_path / "s", download=True)
    assert downloaded and set(downloaded) <= set(rb.PACKAGES)
    assert not any(rb.is_reserved(p) for p in downloaded)


# ------------------------------------------------------------------------------ clip functions


def _beep(seconds: float = 0.5, f: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * f * t)


def test_tone_signal_repeats_and_offsets():
    src = _beep(0.5)
    starts = []
    for i in range(20):
        x = rb.tone_signal(src, 0.5, np.random.default_rng(i), n=SR * 4)
        assert x.shape == (SR * 4,)
        on = np.abs(x) > 0.1
        assert on.mean() > 0.2  # the beep repeats (0.5 s on, 0.5 s off)
        starts.append(int(np.argmax(on)))
    assert len(set(starts)) > 5  # offsets vary


def test_events_excerpt_and_background():
    rng = np.random.default_rng(0)
    x = rb.events_signal([_beep(0.2), _beep(0.3, 500)], (2, 3), rng)
    assert x.shape == (rb.N,) and 0 < np.mean(np.abs(x) > 0.05) < 0.5
    y = rb.excerpt_signal([_beep(1.0)], rng)
    assert y.shape == (rb.N,) and np.mean(np.abs(y) > 0.05) > 0.9  # looped: no gaps
    bg = rb.background_signal(rng.standard_normal(SR), rng)
    assert bg.shape == (rb.N,) and np.mean(bg**2) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rb.background_signal(np.zeros(SR), rng)


def test_mix_snr_and_level():
    rng = np.random.default_rng(1)
    fg = np.tile(_beep(0.5), 8)
    bg = rng.standard_normal(len(fg))
    bg /= np.sqrt(np.mean(bg**2))
    y = rb.mix(fg, bg, 10.0, -6.0)
    assert np.abs(y).max() == pytest.approx(10 ** (-6 / 20))
    scale = np.abs(y).max() / np.abs(fg / np.sqrt(np.mean(fg**2)) + bg * 10**-0.5).max()
    noise = y - scale * fg / np.sqrt(np.mean(fg**2))
    snr = 10 * np.log10(np.mean((y - noise) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.1)


def test_colourings_are_stable_filters_that_change_the_spectrum():
    from scipy.signal import sosfilt, sosfreqz

    for seed in range(5):
        for sos in (
            rb.speaker_colouring(np.random.default_rng(seed)),
            rb.mic_colouring(np.random.default_rng(seed)),
        ):
            poles = [np.roots(s[3:]) for s in sos]
            assert all(np.all(np.abs(p) < 1) for p in poles)
            _, h = sosfreqz(sos, worN=[50, 1000, 7000], fs=SR)
            assert np.abs(h[0]) < np.abs(h[1])  # the high-pass removes the bass
    x = sosfilt(rb.speaker_colouring(np.random.default_rng(0)), _beep(0.5))
    assert np.all(np.isfinite(x))
    clipped = rb.soft_clip(_beep(0.1), 4.0)
    assert np.abs(clipped).max() == pytest.approx(1.0) and not np.allclose(clipped, _beep(0.1))
    assert np.array_equal(rb.soft_clip(_beep(0.1), 1.0), _beep(0.1))


def test_render_clip_device_and_determinism():
    spec = rb.CLASSES["fd_phone_incoming"]
    srcs, bgs = [_beep(0.8)], [np.random.default_rng(2).standard_normal(SR * 2)]
    a, info = rb.render_clip(spec, srcs, bgs, 0, 0)
    b, _ = rb.render_clip(spec, srcs, bgs, 0, 0)
    c, _ = rb.render_clip(spec, srcs, bgs, 0, 1)
    assert a.dtype == np.float32 and a.shape == (rb.N,)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 10 ** (rb.PEAK_DBFS[0] / 20) - 1e-6 <= np.abs(a).max() <= 10 ** (rb.PEAK_DBFS[1] / 20)
    assert rb.SNR_DB[0] <= info["snr_db"] <= rb.SNR_DB[1] and info["device"] == 0
    for name in ("cough_sneeze", "typing"):
        y, _ = rb.render_clip(rb.CLASSES[name], srcs, bgs, 0, 5)
        assert np.all(np.isfinite(y))


# -------------------------------------------------------------------- the layout, fake sources


def fake_sources(root: Path, skip: tuple[str, ...] = ()) -> Path:
    rng = np.random.default_rng(5)
    srcs = [s for c in rb.CLASSES.values() for s in c.sources] + list(rb.BACKGROUNDS)
    for src in srcs:
        for rel in src.paths:
            if rel in skip:
                continue
            path = root / src.package / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            sr = 22050
            n = int(rng.uniform(0.3, 1.2) * sr)
            t = np.arange(n) / sr
            x = np.sin(2 * np.pi * rng.uniform(200, 3000) * t) * np.exp(-t / 0.4)
            x += 0.05 * rng.standard_normal(n)
            sf.write(path, 0.5 * x, sr, format="WAV")  # read back by content, any suffix
    return root


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    sources = fake_sources(
        tmp_path_factory.mktemp("sources"), skip=(rb.CLASSES["baby_cry"].sources[0].paths[0],)
    )
    out = tmp_path_factory.mktemp("bench")
    rb.make_alarm_real_bench(out, seed=0, clips_per_class=4, sources_dir=sources, download=False)
    return out


def test_layout(bench: Path):
    m = json.loads((bench / "manifest.json").read_text())
    assert m["generator"] == "data_prep.make_alarm_real_bench"
    assert (m["n_known"], m["n_unknown"]) == (len(rb.KNOWN), len(rb.UNKNOWN) - 1)
    assert m["missing_classes"] == ["baby_cry"]
    assert len(m["backgrounds"]) == len(rb.BACKGROUNDS)
    known = sorted(p.name for p in (bench / "data" / "pattern_sounds").iterdir())
    assert known == sorted(c.name for c in rb.KNOWN)
    wavs = sorted((bench / "data").rglob("*.wav"))
    assert len(wavs) == 4 * (m["n_known"] + m["n_unknown"])
    for path in wavs[:: max(1, len(wavs) // 12)]:
        x, sr = sf.read(path)
        assert sr == 16000 and x.shape == (64000,) and np.all(np.isfinite(x))
    assert len(list((bench / "data" / "meta" / "csv").glob("few_shot_k_*_openness_*.csv"))) == 9
    # a second call with the same options is a no-op
    t = (bench / "manifest.json").stat().st_mtime_ns
    rb.make_alarm_real_bench(
        bench, seed=0, clips_per_class=4, download=False, sources_dir=Path(m["sources_dir"])
    )
    assert (bench / "manifest.json").stat().st_mtime_ns == t


def test_read_by_the_dataset_loader(bench: Path, tmp_path: Path):
    rows = read_manifest(prepare_alarm_osc(bench, tmp_path / "prepared"))
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["setting"], []).append(r)
    assert {k: len(v) for k, v in by.items() if k.endswith("low")} == {
        "1shot_low": 4,
        "2shot_low": 2,
        "4shot_low": 1,
    }
    n_unknown = len(rb.UNKNOWN) - 1
    mid = by["1shot_middle"][0]
    assert int(mid["n_unknown_unseen"]) == n_unknown // 2
    assert int(by["1shot_high"][0]["n_unknown_seen"]) == 0
    assert int(by["1shot_low"][0]["n_known_classes"]) == len(rb.KNOWN)


def test_cli_refuses_bad_clip_count(tmp_path: Path):
    with pytest.raises(SystemExit):
        rb.main(["--out", str(tmp_path), "--clips-per-class", "6", "--no-download"])
