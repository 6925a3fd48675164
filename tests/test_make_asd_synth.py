"""The synthetic ASD data set generator (data_prep.make_asd_synth / asd_sources), offline:
stand-in source loops (sawtooth + noise) instead of Debian packages."""

from __future__ import annotations

import csv
import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt

from data_prep.asd_sources import (
    BACKGROUNDS,
    MACHINE_TYPES,
    Recording,
    cat_licence,
    check_package,
    dep5_licence,
    read_cat,
    split_half,
    wanted,
)
from data_prep.make_asd_synth import (
    FAULTS,
    SR,
    Source,
    SynthConfig,
    add_fault,
    attributes,
    build,
    plan_section,
    prepare_section,
    render_clip,
)

RE_2023 = re.compile(
    r"^section_(\d{2})_(source|target)_(train|test)_(normal|anomaly)_(\d{4})_"
    r"speed_(\d\.\d)_load_(\d)_mic_(\d)_noise_(\d)\.wav$"
)
RE_2020 = re.compile(r"^(normal|anomaly)_id_(\d{2})_(\d{8})\.wav$")


def _saw(f0: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 2 * ((f0 * t) % 1.0) - 1 + 0.1 * rng.standard_normal(len(t))
    return x / np.abs(x).max()


def _sources() -> tuple[dict[str, list[Source]], list[Source]]:
    machines = {
        "fan": [Source("saw120", _saw(120, 1.0, 1)), Source("saw150", _saw(150, 0.7, 2))],
        "pump": [Source("saw60", _saw(60, 1.3, 3))],
    }
    rng = np.random.default_rng(9)
    bgs = [Source(f"noise{i}", rng.standard_normal(SR) * (i + 1)) for i in range(3)]
    return machines, bgs


CFG = dict(train_clips=4, target_train_clips=2, test_clips=3, clip_s=0.5, machines=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    machines, bgs = _sources()
    out = {}
    for layout in ("dcase2023", "dcase2022", "dcase2020"):
        d = tmp_path_factory.mktemp(layout)
        build(d, SynthConfig(layout=layout, **CFG), machines, bgs)
        out[layout] = d
    return out


@pytest.mark.parametrize("layout,n_sec", [("dcase2023", 1), ("dcase2022", 3)])
def test_dcase2022_2023_names_counts_and_csv(built, layout, n_sec):
    for machine in ("fan", "pump"):
        mdir = built[layout] / "dev_data" / "raw" / machine
        counts: dict[tuple, int] = {}
        for sub in ("train", "test"):
            for f in (mdir / sub).iterdir():
                m = RE_2023.match(f.name)
                assert m, f.name
                sec, dom, split, label, idx = m.group(1, 2, 3, 4, 5)
                assert split == sub
                key = (sec, dom, split, label)
                counts[key] = counts.get(key, 0) + 1
        expected = {}
        for s in range(n_sec):
            sec = f"{s:02d}"
            expected[(sec, "source", "train", "normal")] = 4
            expected[(sec, "target", "train", "normal")] = 2
            for dom in ("source", "target"):
                for label in ("normal", "anomaly"):
                    expected[(sec, dom, "test", label)] = 3
        assert counts == expected
        # indices run 0..n-1 within each group
        names = sorted(p.name for p in (mdir / "test").glob("section_00_source_test_normal_*"))
        assert [RE_2023.match(n).group(5) for n in names] == ["0000", "0001", "0002"]
        for s in range(n_sec):
            with open(mdir / f"attributes_{s:02d}.csv", newline="") as fh:
                rows = list(csv.reader(fh))
            assert rows[0] == ["file_name"] + [f"d{i}{c}" for i in range(1, 5) for c in "pv"]
            files = {
                f"{machine}/{p.parent.name}/{p.name}" for p in mdir.glob(f"*/section_{s:02d}_*.wav")
            }
            assert {r[0] for r in rows[1:]} == files
            for r in rows[1:]:
                assert Path(r[0]).name.endswith("_" + "_".join(r[1:]) + ".wav")
        assert not (mdir / f"attributes_{n_sec:02d}.csv").exists()


def test_dcase2020_names_and_counts(built):
    for machine in ("fan", "pump"):
        mdir = built["dcase2020"] / "dev_data" / machine
        train = sorted(p.name for p in (mdir / "train").iterdir())
        test = sorted(p.name for p in (mdir / "test").iterdir())
        assert all(RE_2020.match(n) for n in train + test)
        assert train[:4] == [f"normal_id_00_{i:08d}.wav" for i in range(4)]
        ids = sorted({RE_2020.match(n).group(2) for n in train})
        assert ids == ["00", "02", "04"]
        assert len(train) == 12 and all(n.startswith("normal_") for n in train)
        assert sum(n.startswith("anomaly_") for n in test) == 9
        assert sum(n.startswith("normal_") for n in test) == 9
        assert not list(mdir.glob("*.csv"))


def test_wav_format_and_train_has_no_anomaly(built):
    for d in built.values():
        wavs = sorted(d.rglob("*.wav"))
        assert not [p for p in wavs if p.parent.name == "train" and "anomaly" in p.name]
        for p in wavs[:: max(1, len(wavs) // 10)]:
            info = sf.info(str(p))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == int(0.5 * SR)
            x, _ = sf.read(str(p), dtype="int16")
            assert np.abs(x).max() > 100  # not silent


def test_deterministic_and_up_to_date(tmp_path, built):
    machines, bgs = _sources()
    cfg = SynthConfig(layout="dcase2023", **CFG)
    build(tmp_path, cfg, machines, bgs)
    ref = built["dcase2023"]
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.suffix in (".wav", ".csv"))
    assert files == sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".wav", ".csv")
    )
    for f in files:
        assert (ref / f).read_bytes() == (tmp_path / f).read_bytes(), f
    probe = next(tmp_path.rglob("*.wav"))
    mtime = probe.stat().st_mtime_ns
    build(tmp_path, cfg, machines, bgs)  # same config: nothing rewritten
    assert probe.stat().st_mtime_ns == mtime
    other = tmp_path.parent / "other_seed"
    build(other, SynthConfig(layout="dcase2023", seed=5, **CFG), machines, bgs)
    assert (other / probe.relative_to(tmp_path)).read_bytes() != probe.read_bytes()


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


@pytest.mark.parametrize("family", FAULTS)
def test_faults_change_the_clip(family):
    machines, bgs = _sources()
    recs = [s.audio for s in machines["fan"]]
    plan = plan_section(0, "fan", 0, 0, len(recs), len(bgs), "dcase2023")
    n = SR
    audio = prepare_section(plan, recs, [b.audio for b in bgs], n)
    attrs = {"speed": "1.0", "load": "2", "mic": "1", "noise": "1"}
    normal = render_clip(plan, audio, attrs, n, np.random.default_rng(3))
    faulty = render_clip(plan, audio, attrs, n, np.random.default_rng(3), family, 1.0)
    diff = faulty - normal
    assert _band_energy(diff, 0, SR / 2) > 1e-3 * _band_energy(normal, 0, SR / 2)


def test_fault_energy_in_the_fault_band():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(SR) * np.hanning(SR)  # a stand-in machine
    lowpassed = sosfilt(butter(8, 1000, fs=SR, output="sos"), y)  # little energy above 2 kHz
    for family, (lo, hi) in {"bearing": (2000, 7000), "hiss": (3000, 8000)}.items():
        out = add_fault(lowpassed, family, 1.0, 10.0, np.random.default_rng(1))
        assert _band_energy(out, lo, hi) > 2 * _band_energy(lowpassed, lo, hi)
    out = add_fault(lowpassed, "irregular", 1.0, 10.0, np.random.default_rng(1))
    assert np.sum(out**2) < np.sum(lowpassed**2)
    with pytest.raises(ValueError):
        add_fault(lowpassed, "nope", 1.0, 10.0, rng)


def test_target_domain_shifts_one_attribute(built):
    for m_index in range(3):  # the shift kind cycles over machines: speed, mic, noise
        plan = plan_section(0, "fan", m_index, 0, 2, 3, "dcase2022")
        src = [attributes(plan, "source", j) for j in range(100)]
        tgt = [attributes(plan, "target", j) for j in range(100)]
        changed = [k for k in src[0] if not {a[k] for a in src} >= {a[k] for a in tgt}]
        assert changed == [plan.shift]
        assert not {a[plan.shift] for a in src} & {a[plan.shift] for a in tgt}
    # and the files of a built section agree with its plan
    d = built["dcase2022"] / "dev_data" / "raw" / "fan"
    tgt_files = [RE_2023.match(p.name) for p in d.glob("*/section_01_target_*")]
    plan = plan_section(0, "fan", 0, 1, 2, 3, "dcase2022")
    col = {"speed": 6, "mic": 8, "noise": 9}[plan.shift]
    want = {"speed": f"{plan.target_speed:.1f}", "mic": "2", "noise": "3"}[plan.shift]
    assert tgt_files and {m.group(col) for m in tgt_files} == {want}


def test_reserved_packages_refused():
    for name in ("hedgewars-data", "asterisk-core-sounds-en-wav", "flightgear-data-base"):
        with pytest.raises(ValueError, match="reserved"):
            check_package(name)
        with pytest.raises(ValueError, match="reserved"):
            wanted([Recording(name, "usr/share/x.wav")])
    used = [r for recs in MACHINE_TYPES.values() for r in recs] + list(BACKGROUNDS)
    assert wanted(used)  # none of ours is reserved


def test_split_halves_are_disjoint_and_cover():
    for recs in [*MACHINE_TYPES.values(), BACKGROUNDS]:
        dev, final = split_half(recs, "dev"), split_half(recs, "final")
        assert not set(dev) & set(final)
        assert set(dev) | set(final) == set(recs)
        assert dev and final
    machine_files = {r for recs in MACHINE_TYPES.values() for r in recs}
    assert not machine_files & set(BACKGROUNDS)
    with pytest.raises(ValueError):
        split_half(BACKGROUNDS, "eval")


def test_dep5_licence_last_match_wins():
    text = (
        "Format: x\n\nFiles: *\nCopyright: a\nLicense: GPL-2+\n\n"
        "Files: data/sfx/a.ogg\n data/sfx/b.ogg\nCopyright: b\nLicense: CC0\n\n"
        "License: GPL-2+\n text\n"
    )
    assert dep5_licence(text, "usr/share/games/x/data/sfx/b.ogg") == "CC0"
    assert dep5_licence(text, "usr/share/games/x/data/sfx/c.ogg") == "GPL-2+"
    assert dep5_licence("", "x") is None


def test_read_cat_roundtrip():
    waves = []
    for i in range(2):
        buf = io.BytesIO()
        sf.write(buf, np.full(100, 0.1 * (i + 1)), 8000, format="WAV", subtype="PCM_16")
        waves.append(buf.getvalue())
    names = [b'"A". License: Creative Commons Zero 1.0.\0', b'"B".\0']
    table_len = 8 * len(waves)
    entries, blobs, off = [], b"", table_len
    for name, w in zip(names, waves, strict=True):
        blob = bytes([len(name)]) + name + w
        entries.append(struct.pack("<II", off | (0x80000000 if not entries else 0), len(blob)))
        blobs += blob
        off += len(blob)
    sounds = read_cat(b"".join(entries) + blobs)
    assert [s[1] for s in sounds] == waves
    assert cat_licence(sounds[0][0]) == "Creative Commons Zero 1.0"
    assert cat_licence(sounds[1][0]) is None
