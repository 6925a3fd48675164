"""A synthetic machine-sound data set for anomalous sound detection, in the exact DCASE layouts.

The real DCASE 2020/2022/2023 Task 2 recordings are not available offline; this generator
builds a stand-in with the same directory layout, file names and attribute CSVs, so the ASD
recipes and loaders run unchanged on it. Normal sounds are REAL machine, engine, motor, fan and
plant recordings of Debian data packages (:mod:`data_prep.asd_sources`), looped and varied;
anomalies are synthetic faults added to them (test clips only).

Layouts (``--layout``)::

    dcase2023  DIR/dev_data/raw/<machine>/train/section_00_source_train_normal_0000_<attrs>.wav
               DIR/dev_data/raw/<machine>/test/section_00_<source|target>_test_<normal|anomaly>_0000_<attrs>.wav
               DIR/dev_data/raw/<machine>/attributes_00.csv      (one section per machine)
    dcase2022  the same names with sections 00, 01, 02 and attributes_0{0,1,2}.csv
    dcase2020  DIR/dev_data/<machine>/train/normal_id_XX_NNNNNNNN.wav
               DIR/dev_data/<machine>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav  (IDs 00, 02, 04)
    DIR/manifest.json   options, split, sources with licences, sections, fault families

``<attrs>`` is ``speed_<v>_load_<l>_mic_<m>_noise_<n>`` (DCASE's ``<name>_<value>`` pairs); the
attribute CSV has DCASE's columns ``file_name,d1p,d1v,...,d4v`` with ``file_name`` =
``<machine>/<train|test>/<file>``. Indices count from 0 within each (section, domain, split,
label) group, as in DCASE. Clips are 16 kHz mono 16-bit WAV.

Per machine type and section (a machine instance; :func:`plan_section`):

* the recording: a primary source recording of the type, plus a quieter secondary one of the
  same type as a second component (sections use different recordings where the half has
  enough);
* a systematic variation: a base speed (0.85-1.2), a body resonance (peaking EQ, 250-4000 Hz,
  +4 to +10 dB) and a shaft rotation rate (6-20 Hz, for the load modulation and bearing faults);
* the background SNR range (10 dB wide from 0-8 dB; 5 dB worse in section 02 of dcase2022);
* the domain shift of the target domain (cycled over machines and sections): ``speed`` (an
  unseen speed setting, 0.7 or 1.3), ``mic`` (another microphone: high-pass 400 Hz, +8 dB at
  2.5 kHz, low-pass 6 kHz) or ``noise`` (an unseen background recording at 5 dB lower SNR).

A clip (:func:`render_clip`) plays the looped recordings from a random start at the speed
``base x speed setting x (1 - 0.01 (load - 2))`` with a 0.5 % jitter and 0.3 % wow, adds a
load-dependent amplitude modulation at the rotation rate (depth 0.04 + 0.04 load), gain
(+1.5 dB per load step) and low-frequency emphasis, the section resonance, a real factory /
outdoor background (never a machine source) at a random SNR, the microphone colouring and a
+-1 dB gain. Attributes: speed {0.9, 1.0, 1.1}, load {1, 2, 3}, mic 1, noise {1, 2} (two
background recordings) in the source domain; the target domain changes the shifted attribute
only, with ``--target-train-clips`` training clips (few-shot domain generalisation).

Fault families (:data:`FAULTS`; test only, never in train; each machine type gets 4 of the 6,
cycled; strengths drawn per clip so that some are subtle):

* ``bearing``: periodic impacts, damped 2-6 kHz resonances at 2.5-4.5 x the rotation rate with
  5 % timing jitter, -26 to -12 dB relative to the machine;
* ``whine``: an added tone at 600-5000 Hz with 0.5 % vibrato, -30 to -16 dB;
* ``irregular``: missing or irregular cycles, 1-3 dips per second of 40-200 ms by 3-10 dB;
* ``rattle``: band-passed noise bursts (800-4000 Hz, 20-80 ms, 2-8 per second), -20 to -8 dB;
* ``drift``: speed drift, a slow (0.2-1 Hz) speed modulation of 2-6 % (normal wow: 0.3 %);
* ``hiss``: friction hiss, 3-6 kHz band noise modulated at the rotation rate, -30 to -18 dB.

Splits (``--split``): each type's recordings, and the backgrounds, are cut into two disjoint
halves by a fixed rule (:func:`data_prep.asd_sources.split_half`); ``dev`` (default seed 0) is
for development and ablations, ``final`` (default seed 1) for the reported table. Both write
the ``dev_data`` layout (they need the test labels). Deterministic for a seed; a second run
with the same options finds ``manifest.json`` and returns at once.

Usage::

    python -m data_prep.make_asd_synth --out data/asd_synth_dev --layout dcase2023 --download
    python -m data_prep.make_asd_synth --out data/asd_synth_final --split final --download
    # DCASE2023-sized (990 + 10 training clips per section, 10 s):
    python -m data_prep.make_asd_synth --out DIR --train-clips 990 --clip-s 10 --download
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

from data_prep.alarm_common import SR, _loop, _peaking, packages_entry
from data_prep.asd_sources import (
    BACKGROUNDS,
    MACHINE_TYPES,
    Recording,
    dep5_licence,
    fetch,
    load_recording,
    split_half,
)
from kwsos.io import write_csv_atomic, write_json_atomic

logger = logging.getLogger(__name__)

VERSION = 1
LAYOUTS = ("dcase2023", "dcase2022", "dcase2020")
SHIFTS = ("speed", "mic", "noise")
FAULTS = ("bearing", "whine", "irregular", "rattle", "drift", "hiss")
FAULTS_PER_TYPE = 4
SOURCE_SPEEDS = (0.9, 1.0, 1.1)
LOADS = (1, 2, 3)
SOURCE_NOISES = (1, 2)
DEFAULT_SEEDS = {"dev": 0, "final": 1}
DEFAULT_CACHE = Path("data/.deb_cache")
#: machine RMS (at load 2) in the written clips
LEVEL_DBFS = -24.0


@dataclass(frozen=True)
class Source:
    """A recording as audio: 16 kHz mono float, and where it comes from (for the manifest)."""

    name: str
    audio: np.ndarray
    info: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class SynthConfig:
    """What a build depends on (saved in ``manifest.json``; equal config = up to date)."""

    layout: str = "dcase2023"
    split: str = "dev"
    seed: int = 0
    machines: int = 7
    train_clips: int = 100
    target_train_clips: int = 10
    test_clips: int = 50
    clip_s: float = 6.0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.split not in DEFAULT_SEEDS:
            raise ValueError(f"split must be dev or final, got {self.split!r}")
        if min(self.machines, self.train_clips, self.test_clips) < 1 or self.clip_s <= 0:
            raise ValueError("machines, train_clips, test_clips and clip_s must be positive")
        if self.target_train_clips < 0:
            raise ValueError("target_train_clips must be >= 0")

    @property
    def n_sections(self) -> int:
        return 1 if self.layout == "dcase2023" else 3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SectionPlan:
    """One machine instance: recordings, systematic variation, domain shift, backgrounds."""

    section: int
    primary: int
    secondary: int
    secondary_db: float
    base_speed: float
    res_hz: float
    res_db: float
    res_q: float
    rot_hz: float
    snr_lo_db: float
    shift: str
    target_speed: float
    backgrounds: tuple[int, int, int]  # noise 1, noise 2 (source), noise 3 (target shift)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def _rng(*key: int | str) -> np.random.Generator:
    return np.random.default_rng(
        [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
    )


def plan_section(
    seed: int, machine: str, m_index: int, section: int, n_rec: int, n_bg: int, layout: str
) -> SectionPlan:
    """The fixed properties of ``section`` of ``machine`` (deterministic for the seed)."""
    rng = _rng(seed, machine, section, "plan")
    bgs = rng.permutation(n_bg)
    bg3 = tuple(int(bgs[i % n_bg]) for i in range(3))
    snr_lo = float(rng.uniform(0.0, 8.0)) - (5.0 if layout == "dcase2022" and section == 2 else 0)
    return SectionPlan(
        section=section,
        primary=section % n_rec,
        secondary=(section + 1) % n_rec,
        secondary_db=float(rng.uniform(-14.0, -6.0)),
        base_speed=float(rng.uniform(0.85, 1.2)),
        res_hz=float(np.exp(rng.uniform(np.log(250.0), np.log(4000.0)))),
        res_db=float(rng.uniform(4.0, 10.0)),
        res_q=float(rng.uniform(1.5, 5.0)),
        rot_hz=float(rng.uniform(6.0, 20.0)),
        snr_lo_db=snr_lo,
        shift=SHIFTS[(m_index + section) % len(SHIFTS)],
        target_speed=float(rng.choice([0.7, 1.3])),
        backgrounds=bg3,  # type: ignore[arg-type]
    )


def machine_faults(m_index: int) -> tuple[str, ...]:
    """The fault families of the ``m_index``-th machine type (4 of 6, cycled)."""
    return tuple(FAULTS[(m_index + j) % len(FAULTS)] for j in range(FAULTS_PER_TYPE))


def attributes(plan: SectionPlan, domain: str, j: int) -> dict[str, str]:
    """The attributes of clip ``j`` of a (section, domain) group, cycling through the
    combinations so each appears equally often."""
    speeds: Sequence[float] = SOURCE_SPEEDS
    mics: Sequence[int] = (1,)
    noises: Sequence[int] = SOURCE_NOISES
    if domain == "target":
        if plan.shift == "speed":
            speeds = (plan.target_speed,)
        elif plan.shift == "mic":
            mics = (2,)
        else:
            noises = (3,)
    combos = list(itertools.product(speeds, LOADS, mics, noises))
    s, load, mic, noise = combos[j % len(combos)]
    return {"speed": f"{s:.1f}", "load": str(load), "mic": str(mic), "noise": str(noise)}


def attr_string(attrs: Mapping[str, str]) -> str:
    return "_".join(f"{k}_{v}" for k, v in attrs.items())


# --------------------------------------------------------------------------------------------
# Synthesis (pure functions on arrays)
# --------------------------------------------------------------------------------------------


def _mic_sos(mic: int) -> np.ndarray:
    if mic == 1:
        return butter(2, 50, "highpass", fs=SR, output="sos")
    return np.vstack(
        [
            butter(2, 400, "highpass", fs=SR, output="sos"),
            _peaking(2500.0, 8.0, 1.0),
            butter(4, 6000, "lowpass", fs=SR, output="sos"),
        ]
    )


_LOW_SOS = butter(2, 300, "lowpass", fs=SR, output="sos")


def _play(buf: np.ndarray, start: float, rate: np.ndarray) -> np.ndarray:
    """Read ``buf`` from ``start`` at the per-sample ``rate`` (linear interpolation)."""
    pos = start + np.concatenate([[0.0], np.cumsum(rate[:-1])])
    return np.interp(pos, np.arange(len(buf)), buf)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def _hann_pulses(n: int, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Sum of Hann windows (peak 1) at sample ``centres`` with sample ``widths``."""
    env = np.zeros(n)
    for c, w in zip(centres.astype(int), widths.astype(int), strict=True):
        a, b = max(0, c - w // 2), min(n, c + w // 2)
        if b > a:
            env[a:b] += np.hanning(w)[a - (c - w // 2) : b - (c - w // 2)]
    return env


def fault_rate(family: str, n: int, severity: float, rng: np.random.Generator) -> np.ndarray | None:
    """The speed multiplier of a speed-type fault (``drift``, ``irregular`` cycles), or
    ``None``; ``severity`` in [0, 1]."""
    t = np.arange(n) / SR
    if family == "drift":
        depth = 0.02 + 0.04 * severity
        return 1.0 + depth * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3))
    return None


def add_fault(
    y: np.ndarray,
    family: str,
    severity: float,
    rot_hz: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``y`` (the machine, before background and microphone) with an additive or amplitude
    fault of ``family`` (see :data:`FAULTS`); ``severity`` in [0, 1] picks the strength."""
    n = len(y)
    t = np.arange(n) / SR
    ref = _rms(y)

    def level(lo: float, hi: float) -> float:
        return ref * 10 ** ((lo + (hi - lo) * severity) / 20)

    if family == "bearing":
        rate = rot_hz * rng.uniform(2.5, 4.5)
        period = SR / rate
        times = np.arange(rng.uniform(0, period), n, period)
        times = times + rng.normal(0, 0.05 * period, len(times))
        times = times[(times >= 0) & (times < n)].astype(int)
        f_res, tau = rng.uniform(2000, 6000), rng.uniform(0.002, 0.005)
        k = np.arange(int(6 * tau * SR))
        kernel = np.exp(-k / (tau * SR)) * np.sin(2 * np.pi * f_res * k / SR)
        imp = np.zeros(n)
        imp[times] = rng.uniform(0.5, 1.0, len(times))
        fault = np.convolve(imp, kernel)[:n]
        return y + fault * level(-26, -12) / _rms(fault)
    if family == "whine":
        f0 = rng.uniform(600, 5000)
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.005 * np.sin(2 * np.pi * 5 * t))) / SR
        return y + np.sqrt(2) * level(-30, -16) * np.sin(phase + rng.uniform(0, 6.3))
    if family == "irregular":
        k = max(1, int(rng.uniform(1, 3) * n / SR))
        dips = _hann_pulses(n, rng.uniform(0, n, k), rng.uniform(0.04, 0.2, k) * SR)
        depth = 1 - 10 ** (-(3 + 7 * severity) / 20)
        return y * (1 - depth * np.clip(dips, 0, 1))
    if family == "rattle":
        k = max(1, int(rng.uniform(2, 8) * n / SR))
        env = _hann_pulses(n, rng.uniform(0, n, k), rng.uniform(0.02, 0.08, k) * SR)
        fc = rng.uniform(800, 4000)
        sos = butter(2, [fc / 1.4, min(fc * 1.4, 7900)], "bandpass", fs=SR, output="sos")
        fault = sosfilt(sos, rng.standard_normal(n)) * env
        return y + fault * level(-20, -8) / _rms(fault)
    if family == "hiss":
        lo = rng.uniform(3000, 5000)
        sos = butter(4, [lo, min(lo + 2000, 7900)], "bandpass", fs=SR, output="sos")
        am = 1 + 0.5 * np.sin(2 * np.pi * rot_hz * t + rng.uniform(0, 6.3))
        fault = sosfilt(sos, rng.standard_normal(n)) * am
        return y + fault * level(-30, -18) / _rms(fault)
    if family == "drift":
        return y  # a speed fault: see fault_rate
    raise ValueError(f"unknown fault family {family!r}")


@dataclass
class SectionAudio:
    """The looped buffers and reference levels of a section (computed once per section)."""

    primary: np.ndarray
    secondary: np.ndarray
    n_primary: int
    n_secondary: int
    res_sos: np.ndarray
    ref_rms: float
    backgrounds: list[np.ndarray]
    n_backgrounds: list[int]
    bg_rms: list[float]


def prepare_section(
    plan: SectionPlan, recs: Sequence[np.ndarray], bgs: Sequence[np.ndarray], n: int
) -> SectionAudio:
    """Loop the section's recordings and backgrounds long enough for clips of ``n`` samples
    at any speed, and measure their levels."""
    need = int(n * 1.6 * plan.base_speed) + 2
    fade = int(0.05 * SR)

    def looped(x: np.ndarray) -> np.ndarray:
        return _loop(x, len(x) + need, fade=fade)[: len(x) + need]

    p, s = recs[plan.primary], recs[plan.secondary]
    lp, ls = looped(p), looped(s)
    k = min(len(lp), len(ls))
    res_sos = _peaking(plan.res_hz, plan.res_db, plan.res_q)
    ref = sosfilt(res_sos, lp[:k] + 10 ** (plan.secondary_db / 20) * ls[:k])
    bl = [looped(bgs[i]) for i in plan.backgrounds]
    return SectionAudio(
        primary=lp,
        secondary=ls,
        n_primary=len(p),
        n_secondary=len(s),
        res_sos=res_sos,
        ref_rms=_rms(ref),
        backgrounds=bl,
        n_backgrounds=[len(bgs[i]) for i in plan.backgrounds],
        bg_rms=[_rms(b) for b in bl],
    )


def render_clip(
    plan: SectionPlan,
    audio: SectionAudio,
    attrs: Mapping[str, str],
    n: int,
    rng: np.random.Generator,
    fault: str | None = None,
    severity: float = 0.5,
) -> np.ndarray:
    """One clip of ``n`` samples, float in [-1, 1]: the machine of ``plan`` under ``attrs``,
    with the fault family ``fault`` (``None``: normal) of strength ``severity`` in [0, 1]."""
    load = int(attrs["load"])
    speed = plan.base_speed * float(attrs["speed"]) * (1 - 0.01 * (load - 2))
    speed *= 1 + rng.normal(0, 0.005)
    t = np.arange(n) / SR
    rate = speed * (1 + 0.003 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.3)))
    f_rate = fault_rate(fault, n, severity, rng) if fault else None
    if f_rate is not None:
        rate = rate * f_rate
    a = _play(audio.primary, rng.uniform(0, audio.n_primary), rate)
    b = _play(audio.secondary, rng.uniform(0, audio.n_secondary), rate)
    y = a + 10 ** (plan.secondary_db / 20) * b
    y = y + 0.25 * (load - 1) * sosfilt(_LOW_SOS, y)
    rot = plan.rot_hz * speed
    y = y * (1 + (0.04 + 0.04 * load) * np.sin(2 * np.pi * rot * t + rng.uniform(0, 6.3)))
    y = sosfilt(audio.res_sos, y)
    gain = 10 ** (1.5 * (load - 2) / 20)
    y = y * gain / audio.ref_rms  # machine at RMS ~gain
    if fault:
        y = add_fault(y, fault, severity, rot, rng)
    k = int(attrs["noise"]) - 1
    bg = audio.backgrounds[k]
    start = int(rng.uniform(0, audio.n_backgrounds[k]))
    bg = bg[start : start + n] / audio.bg_rms[k]
    snr = rng.uniform(plan.snr_lo_db, plan.snr_lo_db + 10) - (5.0 if k == 2 else 0.0)
    x = y + bg * gain * 10 ** (-snr / 20)
    x = sosfilt(_mic_sos(int(attrs["mic"])), x)
    x = x * 10 ** ((LEVEL_DBFS + rng.uniform(-1, 1)) / 20)
    peak = np.abs(x).max()
    return x * (0.99 / peak) if peak > 0.99 else x


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """One file to write: where, and what it contains."""

    relpath: str  # relative to the machine folder: train/... or test/...
    section: int
    domain: str
    label: str
    attrs: Mapping[str, str]
    fault: str | None
    index: int


def clip_specs(cfg: SynthConfig, plan: SectionPlan, faults: Sequence[str]) -> list[ClipSpec]:
    """The files of one section (2020: one machine ID) in the layout of ``cfg``."""
    groups: list[tuple[str, str, str, int]] = [("source", "train", "normal", cfg.train_clips)]
    if cfg.layout != "dcase2020":
        groups.append(("target", "train", "normal", cfg.target_train_clips))
    domains = ("source",) if cfg.layout == "dcase2020" else ("source", "target")
    for dom in domains:
        groups += [
            (dom, "test", "normal", cfg.test_clips),
            (dom, "test", "anomaly", cfg.test_clips),
        ]
    out = []
    sec = plan.section
    for dom, split, label, count in groups:
        for j in range(count):
            attrs = attributes(plan, dom, j)
            fault = faults[j % len(faults)] if label == "anomaly" else None
            if cfg.layout == "dcase2020":
                name = f"{label}_id_{2 * sec:02d}_{j:08d}.wav"
            else:
                name = f"section_{sec:02d}_{dom}_{split}_{label}_{j:04d}_{attr_string(attrs)}.wav"
            out.append(ClipSpec(f"{split}/{name}", sec, dom, label, attrs, fault, j))
    return out


def machine_dir(out: Path, layout: str, machine: str) -> Path:
    if layout == "dcase2020":
        return out / "dev_data" / machine
    return out / "dev_data" / "raw" / machine


def write_attributes_csv(path: Path, machine: str, specs: Sequence[ClipSpec]) -> None:
    """DCASE's ``attributes_XX.csv``: ``file_name,d1p,d1v,...`` (one row per file)."""
    n_attr = max(len(s.attrs) for s in specs)
    header = ["file_name"] + [f"d{i}{c}" for i in range(1, n_attr + 1) for c in "pv"]
    rows = [[f"{machine}/{s.relpath}"] + [x for kv in s.attrs.items() for x in kv] for s in specs]
    write_csv_atomic(path, rows, header)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _expected_files(cfg: SynthConfig) -> int:
    per = cfg.train_clips + 2 * cfg.test_clips
    if cfg.layout != "dcase2020":
        per += cfg.target_train_clips + 2 * cfg.test_clips
    return per * cfg.n_sections


def up_to_date(out: Path, config: dict) -> bool:
    """Whether ``out/manifest.json`` was written with ``config`` and all its clips exist."""
    path = out / "manifest.json"
    if not path.is_file():
        return False
    old = json.loads(path.read_text())
    if old.get("config") != config:
        return False
    return all(
        len(list((out / m["folder"]).glob("*/*.wav"))) == m["n_files"] for m in old["machines"]
    )


def build(
    out: Path,
    cfg: SynthConfig,
    machines: Mapping[str, Sequence[Source]],
    backgrounds: Sequence[Source],
    *,
    force: bool = False,
    extra_manifest: Mapping | None = None,
    verbose: bool = False,
) -> dict:
    """Write the data set of ``cfg`` under ``out`` from the given sources (machine type ->
    its recordings of this split, and this split's backgrounds); returns the manifest.

    Machine types are taken in ``machines``' order, at most ``cfg.machines`` of them.
    """
    out = Path(out)
    names = list(machines)[: cfg.machines]
    config = cfg.to_dict() | {
        "version": VERSION,
        "machine_sources": {m: [s.name for s in machines[m]] for m in names},
        "background_sources": [s.name for s in backgrounds],
    }
    if not force and up_to_date(out, config):
        logger.info("%s is up to date; nothing to do", out / "manifest.json")
        return json.loads((out / "manifest.json").read_text())
    if len(backgrounds) < 1 or any(len(machines[m]) < 1 for m in names):
        raise ValueError("every machine type needs a recording, and one background is needed")
    t0 = time.perf_counter()
    n = int(round(cfg.clip_s * SR))
    bg_audio = [s.audio for s in backgrounds]
    (out / "manifest.json").unlink(missing_ok=True)
    entries = []
    for mi, machine in enumerate(names):
        t_m = time.perf_counter()
        recs = [s.audio for s in machines[machine]]
        faults = machine_faults(mi)
        folder = machine_dir(out, cfg.layout, machine)
        for sub in ("train", "test"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for old in (folder / sub).glob("*.wav"):
                old.unlink()
        sections = []
        n_files = 0
        for sec in range(cfg.n_sections):
            plan = plan_section(cfg.seed, machine, mi, sec, len(recs), len(bg_audio), cfg.layout)
            audio = prepare_section(plan, recs, bg_audio, n)
            specs = clip_specs(cfg, plan, faults)
            for spec in specs:
                rng = _rng(
                    cfg.seed, machine, sec, spec.domain, spec.relpath.split("/")[0], spec.label,
                    spec.index,
                )  # fmt: skip
                severity = float(rng.uniform(0, 1))
                y = render_clip(plan, audio, spec.attrs, n, rng, spec.fault, severity)
                sf.write(str(folder / spec.relpath), y, SR, subtype="PCM_16")
            n_files += len(specs)
            if cfg.layout != "dcase2020":
                write_attributes_csv(folder / f"attributes_{sec:02d}.csv", machine, specs)
            sections.append(
                asdict(plan)
                | {
                    "id" if cfg.layout == "dcase2020" else "name": (
                        f"id_{2 * sec:02d}" if cfg.layout == "dcase2020" else f"section_{sec:02d}"
                    ),
                    "primary_recording": machines[machine][plan.primary].name,
                    "secondary_recording": machines[machine][plan.secondary].name,
                    "background_recordings": [backgrounds[i].name for i in plan.backgrounds],
                }
            )
        entries.append(
            {
                "name": machine,
                "folder": str(folder.relative_to(out)),
                "n_files": n_files,
                "fault_families": list(faults),
                "sources": [dict(s.info) | {"name": s.name} for s in machines[machine]],
                "sections": sections,
            }
        )
        if verbose:
            print(f"{machine}: {n_files} clips ({time.perf_counter() - t_m:.1f} s)", flush=True)
    manifest = {
        "config": config,
        "layout": cfg.layout,
        "split": cfg.split,
        "sample_rate": SR,
        "attributes": {
            "speed": list(SOURCE_SPEEDS),
            "load": list(LOADS),
            "mic": [1],
            "noise": list(SOURCE_NOISES),
            "target_shifts": list(SHIFTS),
        },
        "fault_families": {
            "bearing": "periodic damped 2-6 kHz impacts at 2.5-4.5x the rotation rate",
            "whine": "added tone at 600-5000 Hz with 0.5 % vibrato",
            "irregular": "1-3 amplitude dips (missing/irregular cycles) per second, 3-10 dB",
            "rattle": "band-passed (800-4000 Hz) noise bursts of 20-80 ms, 2-8 per second",
            "drift": "slow 0.2-1 Hz speed modulation of 2-6 %",
            "hiss": "friction hiss: 3-6 kHz band noise modulated at the rotation rate",
        },
        "machines": entries,
        "backgrounds": [dict(s.info) | {"name": s.name} for s in backgrounds],
        **(extra_manifest or {}),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    write_json_atomic(out / "manifest.json", manifest, indent=1)
    return manifest


def load_sources(
    split: str, sources_dir: Path, download: bool, n_machines: int
) -> tuple[dict[str, list[Source]], list[Source], dict]:
    """The recordings of ``split`` from the Debian packages (fetched into ``sources_dir``):
    machine type -> its sources, the backgrounds, and the packages' manifest entry."""
    types = list(MACHINE_TYPES)[:n_machines]
    chosen = {m: split_half(MACHINE_TYPES[m], split) for m in types}
    bgs = split_half(BACKGROUNDS, split)
    recs = [r for m in types for r in chosen[m]] + list(bgs)
    packages = fetch(recs, sources_dir, download)
    copyrights: dict[str, str] = {}
    for p in packages.values():
        if p.copyright_file and (p.root / p.copyright_file).is_file():
            copyrights[p.name] = (p.root / p.copyright_file).read_text(errors="replace")

    def to_source(r: Recording) -> Source | None:
        pkg = packages[r.package]
        if r.file not in pkg.files:
            return None
        audio, own = load_recording(pkg.root, r)
        info = {
            "package": r.package,
            "version": pkg.version,
            "path": r.path,
            # a .cat pack is built from the package's src/wav/* files (their licence)
            "licence": dep5_licence(
                copyrights.get(r.package, ""),
                f"src/wav/{r.name}.wav" if "#" in r.path else r.file,
            ),
        }
        if own:
            info["licence_of_sound"] = own
        return Source(f"{r.package}:{r.name}", audio, info)

    machines = {}
    for m in types:
        srcs = [s for r in chosen[m] if (s := to_source(r)) is not None]
        if srcs:
            machines[m] = srcs
        else:
            logger.warning("machine type %s has no recording available; skipped", m)
    backgrounds = [s for r in bgs if (s := to_source(r)) is not None]
    return machines, backgrounds, {"packages": packages_entry(packages)}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--layout", choices=LAYOUTS, default="dcase2023")
    p.add_argument("--split", choices=tuple(DEFAULT_SEEDS), default="dev")
    p.add_argument("--seed", type=int, help="default: 0 for dev, 1 for final")
    p.add_argument("--machines", type=int, default=len(MACHINE_TYPES))
    p.add_argument("--train-clips", type=int, default=100, help="source training clips/section")
    p.add_argument("--target-train-clips", type=int, default=10)
    p.add_argument("--test-clips", type=int, default=50, help="per domain and label")
    p.add_argument("--clip-s", type=float, default=6.0)
    p.add_argument("--sources-dir", type=Path, default=DEFAULT_CACHE, help="package cache")
    p.add_argument("--download", action="store_true", help="apt-get download missing packages")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    seed = DEFAULT_SEEDS[args.split] if args.seed is None else args.seed
    cfg = SynthConfig(
        layout=args.layout,
        split=args.split,
        seed=seed,
        machines=args.machines,
        train_clips=args.train_clips,
        target_train_clips=args.target_train_clips,
        test_clips=args.test_clips,
        clip_s=args.clip_s,
    )
    t0 = time.perf_counter()
    machines, backgrounds, extra = load_sources(
        args.split, args.sources_dir, args.download, args.machines
    )
    if not machines or not backgrounds:
        raise SystemExit(
            f"no recordings available in {args.sources_dir} (pass --download to fetch them)"
        )
    extra["recording_split_rule"] = (
        "each type's recordings (and the backgrounds) sorted by (package, path); "
        "dev = even positions, final = odd positions"
    )
    m = build(
        args.out, cfg, machines, backgrounds, force=args.force, extra_manifest=extra, verbose=True
    )
    n = sum(e["n_files"] for e in m["machines"])
    print(
        f"{n} clips of {len(m['machines'])} machine types -> {args.out} ({time.perf_counter() - t0:.1f} s)"
    )


if __name__ == "__main__":
    main()
