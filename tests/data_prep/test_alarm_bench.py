"""make_alarm_bench on a tiny subset, with fake package audio (no network, no apt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import make_alarm_bench as mab
from data_prep.prepare_alarm_osc import prepare_alarm_osc, read_manifest

CLASSES = ["smoke_alarm_t3", "co_alarm_t4", "siren_wail", "fd_bell", "cough", "clapping", "music"]


def fake_sources(root: Path, packages: tuple[str, ...] | None = None) -> Path:
    """Short generated sounds at the paths the classes expect inside the Debian packages."""
    rng = np.random.default_rng(5)
    for spec in mab.CLASSES.values():
        for src in spec.sources:
            if packages is not None and src.package not in packages:
                continue
            for rel in src.paths:
                path = root / src.package / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sr = 22050
                n = int(rng.uniform(0.2, 1.5) * sr)
                t = np.arange(n) / sr
                x = np.sin(2 * np.pi * rng.uniform(200, 3000) * t) * np.exp(-t / 0.3)
                x += 0.05 * rng.standard_normal(n)
                sf.write(path, 0.5 * x, sr, format="WAV")  # read back by content, any suffix
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return fake_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory, sources: Path) -> Path:
    out = tmp_path_factory.mktemp("bench")
    mab.make_alarm_bench(out, seed=0, clips_per_class=4, classes=CLASSES, sources_dir=sources,
                         download=False)  # fmt: skip
    return out


def test_layout_and_audio(bench: Path):
    m = json.loads((bench / "manifest.json").read_text())
    assert (m["n_known"], m["n_unknown"]) == (4, 3)
    names = {c["name"]: c for c in m["classes"]}
    assert set(names) == set(CLASSES)
    assert names["fd_bell"]["sources"][0]["licence"] == "CC-BY-3.0"
    assert names["cough"]["sources"][0]["package"] == "scratch"
    assert names["smoke_alarm_t3"]["sources"] == []
    for cls in ("smoke_alarm_t3", "fd_bell"):
        assert len(list((bench / "data" / "pattern_sounds" / cls).glob("*.wav"))) == 4
    wavs = sorted((bench / "data").rglob("*.wav"))
    assert len(wavs) == 4 * len(CLASSES)
    for path in wavs:
        x, sr = sf.read(path)
        assert sr == 16000 and x.shape == (64000,)
        assert np.all(np.isfinite(x)) and 0.2 < np.abs(x).max() <= 0.91
    # the meta CSVs of the dataset: 3 shot counts x 3 openness levels
    assert len(list((bench / "data" / "meta" / "csv").glob("few_shot_k_*_openness_*.csv"))) == 9


def test_meta_csvs_read_by_the_dataset_loader(bench: Path, tmp_path: Path):
    index = read_manifest(prepare_alarm_osc(bench, tmp_path / "prepared"))
    by_setting: dict[str, list[dict]] = {}
    for r in index:
        by_setting.setdefault(r["setting"], []).append(r)
    assert {k: len(v) for k, v in by_setting.items() if k.endswith("low")} == {
        "1shot_low": 4, "2shot_low": 2, "4shot_low": 1
    }  # fmt: skip
    # middle: 1 of the 3 unknown classes (clapping, preferred) is never seen in training
    mid = by_setting["1shot_middle"][0]
    assert (mid["n_unknown_seen"], mid["n_unknown_unseen"]) == ("2", "1")
    test = read_manifest(mid["test"])
    assert {r["class"] for r in test if r["role"] == "unknown_unseen"} == {"clapping"}
    high = by_setting["2shot_high"][0]
    assert (high["n_unknown_seen"], high["n_unknown_unseen"]) == ("0", "3")
    train = read_manifest(high["train"])
    assert len(train) == 2 * 4 and {r["label"] for r in train} == {
        "smoke_alarm_t3", "co_alarm_t4", "siren_wail", "fd_bell"
    }  # fmt: skip


def test_deterministic_cached_and_subset_stable(bench: Path, sources: Path, tmp_path: Path):
    manifest = bench / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    mab.make_alarm_bench(bench, seed=0, clips_per_class=4, classes=CLASSES, sources_dir=sources,
                         download=False)  # fmt: skip
    assert manifest.stat().st_mtime_ns == stamp  # cached: nothing rebuilt
    solo = tmp_path / "solo"
    mab.make_alarm_bench(solo, seed=0, clips_per_class=4, classes=["smoke_alarm_t3", "cough"],
                         sources_dir=sources, download=False)  # fmt: skip
    for rel in ("pattern_sounds/smoke_alarm_t3/smoke_alarm_t3_03.wav",
                "unwanted_sounds/cough/cough_02.wav"):  # fmt: skip
        assert (solo / "data" / rel).read_bytes() == (bench / "data" / rel).read_bytes()
    other = tmp_path / "seed1"
    mab.make_alarm_bench(other, seed=1, clips_per_class=4, classes=["smoke_alarm_t3", "cough"],
                         sources_dir=sources, download=False)  # fmt: skip
    rel = "pattern_sounds/smoke_alarm_t3/smoke_alarm_t3_01.wav"
    assert (other / "data" / rel).read_bytes() != (bench / "data" / rel).read_bytes()


def test_clips_differ_within_a_class(bench: Path):
    a, _ = sf.read(bench / "data" / "unwanted_sounds" / "music" / "music_01.wav")
    b, _ = sf.read(bench / "data" / "unwanted_sounds" / "music" / "music_02.wav")
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.9


def test_fallback_to_reserve_classes(tmp_path: Path):
    """Without tuxpaint-stamps-default its classes are replaced by scratch reserves."""
    root = fake_sources(tmp_path / "src", packages=("scratch", "oxygen-sounds"))
    packages = {}
    for name, paths in mab._wanted_paths(list(mab.CLASSES.values())).items():
        pkg = packages[name] = mab._Package(name, root / name)
        mab._fetch_package(pkg, paths, download=False)
    assert not packages["tuxpaint-stamps-default"].available
    assert "download off" in packages["lomiri-sounds"].error
    known, unknown, fallbacks = mab._select(None, packages)
    assert len(known) == 24 and len(unknown) == 10
    replaced = {f["class"]: f["replaced_by"] for f in fallbacks}
    assert replaced["vacuum_cleaner"] == "laughing" and replaced["washing_machine"] == "baby_cry"
    # freedesktop and lomiri missing: the oxygen reserve first, then the synthetic ones
    assert replaced["fd_alarm_clock"] == "oxygen_error_serious"
    assert replaced["fd_phone_ring"] == "door_buzzer"
    assert "dog_bark" not in replaced and "water_running" not in replaced  # scratch part left
    assert len({s.name for s in known + unknown}) == 34
    with pytest.raises(ValueError, match="unavailable"):
        mab._select(["vacuum_cleaner"], packages)


def test_errors(tmp_path: Path, sources: Path):
    with pytest.raises(ValueError, match="multiple of 4"):
        mab.make_alarm_bench(tmp_path, clips_per_class=6, download=False)
    with pytest.raises(ValueError, match="unknown class 'nope'"):
        mab.make_alarm_bench(tmp_path, classes=["nope"], sources_dir=sources, download=False)
    with pytest.raises(ValueError, match="at least one known class"):
        mab.make_alarm_bench(tmp_path, classes=["cough"], sources_dir=sources, download=False)


def test_every_synthetic_class_renders(tmp_path: Path):
    for spec in mab.CLASSES.values():
        if spec.kind == "synth":
            x = mab._ClassRenderer(spec, 0, []).render(5)
            assert x.shape == (64000,) and np.all(np.isfinite(x)), spec.name


def test_cli_list(capsys):
    assert mab.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "smoke_alarm_t3" in out and "(reserve)" in out
