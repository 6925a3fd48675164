"""Generate a corpus of many spoken English words in running speech, for pretraining keyword
embeddings (issue #19, route 2).

A TACos keyword-embedding head (a word x relative-position classifier) must generalise to
keywords and voices it never saw. This corpus gives it a few thousand common English words, each
spoken several times by different synthetic voices inside short sentences of 3-7 corpus words
(so coarticulation is real), with the onset and offset of every word, and none of the keywords,
near-words or evaluation voices of the benchmarks (the demo, KWS-TTS, KWS-DailyTalk).

Usage::

    python -m data_prep.make_kws_words --out data/kws_words --seed 0 [--download]

Output (``<out>/``)::

    audio/train/<utt>.wav  audio/val/<utt>.wav   16 kHz mono PCM-16, one sentence per file
    words.csv          file,word,onset,offset,voice,split,timing   (every word of every file)
    utterances.csv     one row per file: text, voice, style, augmentation, timing
    noise/             the Debian sound clips used as background (16 kHz WAV, licences)
    manifest.json      configuration, word source, voices, noise sources, licences, counts,
                       engine versions, word-time checks
    .complete.json     written last; a re-run with the same arguments does nothing

* **Words** (:func:`candidate_words`, :func:`select_vocabulary`): the most frequent English words
  of the ``wordfreq`` package (PyPI; code Apache-2.0, frequency data CC-BY-SA-4.0), alphabetic,
  in festival's CMU lexicon (``festlex-cmu``) when installed, and never a keyword, a word of a
  multi-word keyword, a near-word / distractor, or an inflection (-s, -es, -ed, -ing) of one of
  them, of any benchmark; a word that contains a keyword word (``tonight``, ``household``) is
  left out too (:func:`exclusion_reason`).
* **Voices** (:data:`TRAIN_VOICES`, :data:`VAL_VOICES`): no (engine, base voice) pair and no
  speaker in common with the benchmarks' validation/test voices (:func:`check_voices`); the
  ``val`` split is spoken only by voices (base voice and speaker) absent from ``train``.
* **Word times from the engines**: espeak-ng (libespeak-ng word and phoneme events), flite
  (libflite Word/Segment relations) and festival (Word items via Scheme) are driven in a way
  that reports when each word starts and ends; the audio is the same as the command line's.
  Where an engine's times are unusable the sentence is re-made from separately synthesised words
  (``timing`` = ``chunks``: exact times, no coarticulation); otherwise ``timing`` = ``engine``.
* **Augmentation** per file (seeded, recorded in ``utterances.csv``): speaking rate and pitch,
  speed perturbation, reverberation (:func:`data_prep.make_kws_tts.room_impulse_response`),
  additive noise at 0-20 dB SNR (Debian clips used by no benchmark, babble of other corpus
  voices, or generated coloured noise), a telephone channel (300-3400 Hz, 8 kHz round trip),
  and the output level.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import logging
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, resample_poly, sosfiltfilt

from data_prep.alarm_common import RESERVED_PACKAGES, fetch_packages, is_reserved
from data_prep.kws_tts_texts import KEYWORDS as KWS_TTS_KEYWORDS
from data_prep.make_demo import KEYWORDS as DEMO_KEYWORDS
from data_prep.make_demo import LONG_VOICES, random_style
from data_prep.make_kws_tts import (
    COMPLETE_MARKER,
    DEBIAN_NOISES,
    EVAL_VOICES,
    PARTIAL_MARKER,
    PIPER_VOICE,
    GenerationError,
    _run_jobs,
    _write_csv,
    _write_text,
    _write_wav,
    prepare_out_dir,
    room_impulse_response,
    run_with_progress,
    tile,
)
from data_prep.tts import (
    SAMPLE_RATE,
    Style,
    Voice,
    active_rms,
    engine_versions,
    package_version,
    resample,
    speak,
)
from kwsos.hooks import Hook
from kwsos.noise import background_noise, colored_noise

log = logging.getLogger(__name__)

__all__ = [
    "BENCHMARK_EVAL_VOICES",
    "benchmark_noise_packages",
    "NOISE_CLIPS",
    "TRAIN_VOICES",
    "VAL_VOICES",
    "GenerationError",
    "candidate_words",
    "check_noise_package",
    "check_voices",
    "excluded_words",
    "exclusion_reason",
    "inflections",
    "make_kws_words",
    "select_vocabulary",
    "stems",
]

GENERATOR = "data_prep.make_kws_words"
GENERATOR_VERSION = "1"
SPLITS = ("train", "val")
SPLIT_SEED_ID = {"train": 0, "val": 1}
OWNED = ("audio", "words.csv", "utterances.csv", "manifest.json")
DEFAULT_SOURCES = Path("data/.deb_cache")

DEFAULT_WORDS = 2000
DEFAULT_TOKENS_PER_WORD = 6
#: Share of each word's tokens spoken in ``val`` (at least one when a word has 2+ tokens).
VAL_FRACTION = 1 / 6
WORDS_PER_SENTENCE = (3, 7)
#: Words ranked after the vocabulary (same filters and exclusions) that babble noise speaks.
N_BABBLE_WORDS = 600

# ----------------------------------------------------------------------------------------------
# Word list.

WORD_SOURCE = {
    "name": "wordfreq",
    "package": "wordfreq (PyPI), top_n_list('en', ...), wordlist 'best'",
    "licence": "wordfreq code Apache-2.0; its word-frequency data CC-BY-SA-4.0 "
    "(built from Wikipedia, subtitles, news, books, web text, Twitter and Reddit)",
    "url": "https://pypi.org/project/wordfreq/",
}
CMU_LEXICON = Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out")
CMU_SOURCE = {
    "name": "CMU pronouncing dictionary 0.4 (festival's festlex-cmu, Debian)",
    "path": str(CMU_LEXICON),
    "licence": "BSD-style (CMU; see /usr/share/doc/festlex-cmu/copyright)",
    "use": "filter only: a corpus word must have a dictionary pronunciation",
}
CANDIDATE_POOL = 12_000
#: The only two-letter words kept (others in the frequency list are mostly abbreviations).
TWO_LETTER_WORDS = frozenset(
    "am an as at be by do go he if in is it me my no of oh on or so to up us we".split()
)
#: Profanity that the CMU lexicon knows (left out of a corpus others will listen to), and
#: abbreviations that an engine spells out.
BLOCKED_WORDS = frozenset("damn damned hell shit sex sexy porn dick ass bitch etc".split())

#: KWS-DailyTalk's 15 keywords (data_prep/prepare_kws_dailytalk.py reads them from the dataset's
#: annotations and keeps no list): KWS-TTS's, with "deposit" where KWS-TTS has "bank account".
DAILYTALK_KEYWORDS: tuple[str, ...] = tuple(
    k.label for k in KWS_TTS_KEYWORDS if k.label != "bank account"
) + ("deposit",)
#: The demo's near-words: one per confusable sentence of make_demo.CONFUSABLE_SENTENCES.
DEMO_NEAR_WORDS: tuple[str, ...] = (
    "whether",
    "feather",
    "leather",
    "commuter",
    "bandana",
    "compute",
)
#: A corpus word containing a keyword word of at least this many letters is excluded.
MIN_SUBSTRING_KEYWORD = 4


def excluded_words() -> dict[str, str]:
    """Every word the corpus must not hold, with where it comes from.

    The keywords of the demo, KWS-TTS and KWS-DailyTalk, each word of a multi-word keyword
    ("good morning": good, morning), and the near-words / distractors (every word of a multi-word
    near-word such as "you on"), as lower-case single words.
    """
    out: dict[str, str] = {}

    def add(text: str, reason: str) -> None:
        for word in re.findall(r"[a-z']+", text.lower()):
            out.setdefault(word, reason)

    for _, spoken in DEMO_KEYWORDS:
        add(spoken, "demo keyword")
    for kw in KWS_TTS_KEYWORDS:
        add(kw.label, "KWS-TTS keyword")
    for label in DAILYTALK_KEYWORDS:
        add(label, "KWS-DailyTalk keyword")
    for word in DEMO_NEAR_WORDS:
        add(word, "demo near-word")
    for kw in KWS_TTS_KEYWORDS:
        for near in kw.near:
            add(near.word, f"KWS-TTS near-word of {kw.label}")
    return out


def keyword_words() -> frozenset[str]:
    """The words of all keywords (not the near-words): a corpus word may not contain one."""
    labels = [s for _, s in DEMO_KEYWORDS] + [k.label for k in KWS_TTS_KEYWORDS]
    labels += list(DAILYTALK_KEYWORDS)
    return frozenset(w for label in labels for w in label.lower().split())


_VOWELS = set("aeiouy")


def inflections(word: str) -> set[str]:
    """Simple inflections of ``word``: plural/3rd person -s/-es, past -ed/-d, -ing (with the
    e-drop, y -> ies/ied and consonant doubling)."""
    w = word.lower()
    out = {w + "s", w + "es", w + "ed", w + "ing"}
    if w.endswith("e"):
        out |= {w + "d", w[:-1] + "ing"}
    if len(w) > 1 and w.endswith("y") and w[-2] not in _VOWELS:
        out |= {w[:-1] + "ies", w[:-1] + "ied"}
    if (
        len(w) > 2
        and w[-1] not in _VOWELS | {"w", "x"}
        and w[-2] in _VOWELS
        and w[-3] not in _VOWELS
    ):
        out |= {w + w[-1] + "ed", w + w[-1] + "ing"}
    return out


def stems(word: str) -> set[str]:
    """``word`` and every base form that a simple inflectional ending could have come from
    (``dollars`` -> dollar, ``stopped`` -> stop, ``leaving`` -> leav/leave, ``cities`` -> city).
    Two words with a stem in common are treated as inflections of each other."""
    w = word.lower()
    out = {w}

    def keep(stem: str) -> None:
        if len(stem) >= 2:
            out.add(stem)

    if w.endswith("ies") or w.endswith("ied"):
        keep(w[:-3] + "y")
    if w.endswith("es"):
        keep(w[:-2])
    if w.endswith("s") and not w.endswith("ss"):
        keep(w[:-1])
    for suffix in ("ed", "ing"):
        if w.endswith(suffix):
            base = w[: -len(suffix)]
            keep(base)
            keep(base + "e")
            if len(base) > 2 and base[-1] == base[-2]:
                keep(base[:-1])
    return out


@lru_cache(maxsize=1)
def _exclusion_index() -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    excluded = excluded_words()
    stem_index: dict[str, str] = {}
    for word in sorted(excluded):
        for stem in stems(word):
            stem_index.setdefault(stem, word)
    kw_words = frozenset(w for w in keyword_words() if len(w) >= MIN_SUBSTRING_KEYWORD)
    return excluded, stem_index, kw_words


def exclusion_reason(word: str) -> str | None:
    """Why ``word`` may not be in the corpus, or None if it may: it is an excluded word
    (:func:`excluded_words`), shares a stem with one (an inflection either way), or contains a
    keyword word of 4+ letters (``tonight``, ``cashier``, ``household``)."""
    excluded, stem_index, kw_words = _exclusion_index()
    w = word.lower()
    if w in excluded:
        return excluded[w]
    for stem in sorted(stems(w)):
        if stem in stem_index:
            return f"inflection of {stem_index[stem]!r} ({excluded[stem_index[stem]]})"
    for kw in sorted(kw_words):
        if kw in w:
            return f"contains the keyword word {kw!r}"
    return None


@lru_cache(maxsize=1)
def cmu_lexicon() -> frozenset[str] | None:
    """The head words of festival's CMU lexicon, or None if festlex-cmu is not installed."""
    if not CMU_LEXICON.is_file():
        return None
    words = set()
    with CMU_LEXICON.open(encoding="latin-1") as handle:
        for line in handle:
            m = re.match(r'\("([^"]+)"', line)
            if m:
                words.add(m.group(1).lower())
    return frozenset(words)


def wordfreq_ranked(n: int = CANDIDATE_POOL) -> list[str]:
    """The ``n`` most frequent English words of wordfreq (most frequent first)."""
    try:
        import wordfreq
    except ImportError as err:
        raise GenerationError(
            "make_kws_words: the word list comes from the 'wordfreq' package; "
            "pip install wordfreq==3.1.1"
        ) from err
    return list(wordfreq.top_n_list("en", n))


def candidate_words(ranked: Iterable[str], lexicon: frozenset[str] | None) -> list[str]:
    """Speakable dictionary words of ``ranked``, in order: lower-case ASCII letters only, at
    least two letters (two-letter words only from :data:`TWO_LETTER_WORDS`), a vowel, in
    ``lexicon`` when given, not blocked; duplicates dropped."""
    out, seen = [], set()
    for raw in ranked:
        w = raw.lower()
        if w in seen or not re.fullmatch(r"[a-z]{2,}", w) or not _VOWELS & set(w):
            continue
        if len(w) == 2 and w not in TWO_LETTER_WORDS:
            continue
        if w in BLOCKED_WORDS or (lexicon is not None and w not in lexicon):
            continue
        seen.add(w)
        out.append(w)
    return out


def select_vocabulary(
    candidates: Sequence[str], n_words: int, n_extra: int = 0
) -> tuple[list[str], list[str], dict[str, str]]:
    """The first ``n_words`` candidates without an :func:`exclusion_reason`, the next
    ``n_extra`` (for babble noise), and the dropped candidates with their reasons."""
    kept, dropped = [], {}
    for w in candidates:
        if len(kept) >= n_words + n_extra:
            break
        reason = exclusion_reason(w)
        if reason is None:
            kept.append(w)
        else:
            dropped[w] = reason
    if len(kept) < n_words:
        raise GenerationError(
            f"make_kws_words: only {len(kept)} usable words in the source, --words {n_words} asked"
        )
    return kept[:n_words], kept[n_words:], dropped


# ----------------------------------------------------------------------------------------------
# Voices.

#: The voices of the benchmarks' validation and test splits (demo long recording, KWS-TTS).
BENCHMARK_EVAL_VOICES: tuple[Voice, ...] = (*LONG_VOICES, *EVAL_VOICES, PIPER_VOICE)
#: Engines and voices that are one and the same recorded speaker.
SPEAKERS: dict[tuple[str, str], str] = {
    ("flite", "slt"): "cmu-slt",
    ("festival", "cmu_us_slt_arctic_hts"): "cmu-slt",
    ("flite", "kal"): "kal",
    ("flite", "kal16"): "kal",
    ("festival", "kal_diphone"): "kal",
    ("festival", "ked_diphone"): "ked",
    ("flite", "awb"): "cmu-awb",
    ("flite", "rms"): "cmu-rms",
    ("piper", "en_US-joe-medium"): "joe",
}


def base_voice(voice: Voice) -> tuple[str, str]:
    """(engine, base voice id): an espeak-ng voice without its ``+variant``."""
    return voice.engine, voice.voice_id.split("+", 1)[0]


def speaker(voice: Voice) -> str:
    """The speaker behind a voice (espeak-ng: its base voice, the variants being formant and
    pitch settings of the same rules)."""
    key = base_voice(voice)
    return SPEAKERS.get(key, f"{key[0]}:{key[1]}")


def _espeak(accent: str, variants: Iterable[str]) -> tuple[Voice, ...]:
    return tuple(
        Voice(
            f"espeak-ng-{accent}{'+' + v if v else ''}",
            "espeak-ng",
            f"{accent}{'+' + v if v else ''}",
        )
        for v in variants
    )


#: espeak-ng accents of each split (en-us and en-gb-scotland speak the benchmarks' evaluation
#: sentences, so they are never used).
TRAIN_ACCENTS = ("en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
VAL_ACCENTS = ("en-029",)
#: espeak-ng variants of each split (disjoint; m2 and f4, the variants of the benchmarks'
#: evaluation voices en-gb-scotland+m2 and en-us+f4, are not used at all).
TRAIN_VARIANTS = (
    "",
    "m1",
    "m3",
    "m4",
    "m5",
    "m7",
    "f1",
    "f2",
    "f3",
    "klatt",
    "klatt2",
    "klatt4",
    "croak",
)
VAL_VARIANTS = ("m6", "f5", "klatt3")
FESTIVAL_KAL = Voice("festival-kal_diphone", "festival", "kal_diphone", 100.0)
FESTIVAL_KAL_DIR = Path("/usr/share/festival/voices/english/kal_diphone")

TRAIN_VOICES: tuple[Voice, ...] = (
    *(v for accent in TRAIN_ACCENTS for v in _espeak(accent, TRAIN_VARIANTS)),
    Voice("flite-awb", "flite", "awb", 130.0),
    Voice("flite-kal", "flite", "kal", 95.0),
    Voice("flite-kal16", "flite", "kal16", 95.0),
    FESTIVAL_KAL,
)
VAL_VOICES: tuple[Voice, ...] = (
    *(v for accent in VAL_ACCENTS for v in _espeak(accent, VAL_VARIANTS)),
    Voice("flite-rms", "flite", "rms"),
)
#: Share of each split's sentences per group of voices (split evenly inside a group).
VOICE_SHARES: dict[str, dict[str, float]] = {
    "train": {
        "espeak-ng": 0.60,
        "flite-awb": 0.15,
        "flite-kal": 0.05,
        "flite-kal16": 0.08,
        "festival-kal_diphone": 0.12,
    },
    "val": {"espeak-ng": 0.5, "flite-rms": 0.5},
}


def voice_group(voice: Voice) -> str:
    return "espeak-ng" if voice.engine == "espeak-ng" else voice.name


def check_voices(
    train: Sequence[Voice] = TRAIN_VOICES,
    val: Sequence[Voice] = VAL_VOICES,
    benchmark: Sequence[Voice] = BENCHMARK_EVAL_VOICES,
) -> None:
    """Raise ValueError if a corpus voice shares an (engine, base voice) pair or a speaker with
    a benchmark evaluation voice, or if ``val`` shares one with ``train``."""
    bench_bases = {base_voice(v) for v in benchmark}
    bench_speakers = {speaker(v) for v in benchmark}
    for v in (*train, *val):
        if base_voice(v) in bench_bases or speaker(v) in bench_speakers:
            raise ValueError(f"voice {v.name} is (or speaks like) a benchmark evaluation voice")
    if {speaker(v) for v in train} & {speaker(v) for v in val}:
        raise ValueError("a speaker is in both train and val")
    if {base_voice(v) for v in train} & {base_voice(v) for v in val}:
        raise ValueError("a base voice is in both train and val")


def available_voices(voices: Sequence[Voice]) -> tuple[tuple[Voice, ...], list[str]]:
    """The voices whose engine (and festival voice) is installed, and notes on the others."""
    missing_programs = {
        e
        for e, prog in (("espeak-ng", "espeak-ng"), ("flite", "flite"), ("festival", "festival"))
        if shutil.which(prog) is None
    }
    out, notes = [], []
    for v in voices:
        if v.engine in missing_programs:
            notes.append(f"{v.name}: {v.engine} not installed")
        elif v.engine == "festival" and not FESTIVAL_KAL_DIR.is_dir():
            notes.append(f"{v.name}: not installed (apt-get install -y festvox-kallpc16k)")
        else:
            out.append(v)
    return tuple(out), sorted(set(notes))


# ----------------------------------------------------------------------------------------------
# Background sounds: Debian packages that no benchmark and no other generator uses.


@dataclass(frozen=True)
class NoiseClip:
    """A background recording of a Debian package (at most ``max_s`` seconds of it are used)."""

    category: str
    package: str
    path: str
    max_s: float = 120.0

    @property
    def name(self) -> str:
        return f"{self.package.split('-')[0]}-{Path(self.path).stem.lstrip('@')}"


_LUGARU = "usr/share/games/lugaru/Sounds/"
_CLONK = "usr/share/games/openclonk/Music.ocg/"
NOISE_CLIPS: tuple[NoiseClip, ...] = tuple(
    NoiseClip(cat, "lugaru-data", _LUGARU + f + ".ogg")
    for cat, f in (
        ("wind", "Wind"),
        ("outdoor", "DesertAmbient"),
        ("music", "Music1Desert"),
        ("music", "Music1Grass"),
        ("music", "Music1Snow"),
        ("music", "Music2"),
        ("music", "Music3"),
    )
) + tuple(
    NoiseClip("music", "openclonk-data", _CLONK + f + ".ogg")
    for f in (
        "@CrushedIceCocktail",
        "Cavern",
        "IslandDreams",
        "LucidDream",
        "Motorway",
        "Offshore",
        "TheSkylands",
        "UrbanBolero",
    )
)
NOISE_LICENCES = {
    "lugaru-data": "CC-BY-SA-3.0 (Data/*, (c) Wolfire Games; debian/copyright of lugaru-data)",
    "openclonk-data": "CC-BY-3.0 (Music.ocg: music by K-Pone, Music.ocg/authors.txt; "
    "debian/copyright of openclonk-data)",
}


def benchmark_noise_packages() -> frozenset[str]:
    """Sound packages that the benchmarks use (never taken here): KWS-TTS's noises, the ASD
    generator's machine and background recordings and the alarm benchmarks' packages."""
    from data_prep import asd_sources
    from data_prep.alarm_common import BENCHMARK_PACKAGES

    names = {c.package for c in DEBIAN_NOISES} | set(BENCHMARK_PACKAGES)
    names |= {r.package for recs in asd_sources.MACHINE_TYPES.values() for r in recs}
    names |= {r.package for r in asd_sources.BACKGROUNDS}
    return frozenset(names)


def check_noise_package(name: str) -> None:
    """Refuse a reserved package (data_prep.alarm_common.RESERVED_PACKAGES) or one that a
    benchmark uses, before apt-get can run."""
    if is_reserved(name):
        raise ValueError(f"Debian package {name} is reserved for held-out evaluation")
    if name in benchmark_noise_packages():
        raise ValueError(f"Debian package {name} is a benchmark's sound source")


def fetch_noises(noise_dir: Path, sources_dir: Path, download: bool) -> list[str]:
    """Extract :data:`NOISE_CLIPS` (from the package cache ``sources_dir``, downloading missing
    packages with ``apt-get download`` when ``download``) to ``noise_dir`` as 16 kHz WAV."""
    names = [c.name for c in NOISE_CLIPS]
    marker = noise_dir / ".complete"
    if marker.is_file() and json.loads(marker.read_text()) == names:
        return names
    wanted: dict[str, set[str]] = {}
    for clip in NOISE_CLIPS:
        wanted.setdefault(clip.package, set()).add(clip.path)
    packages = fetch_packages(wanted, sources_dir, download, check=check_noise_package)
    missing = [c for c in NOISE_CLIPS if c.path not in packages[c.package].files]
    if missing:
        errors = {p.name: p.error for p in packages.values() if p.error}
        raise GenerationError(
            f"make_kws_words: {len(missing)} noise clip(s) missing ({errors or missing[0].path}); "
            "add --download (apt-get download into the cache) or use --noise generated"
        )
    noise_dir.mkdir(parents=True, exist_ok=True)
    for clip in NOISE_CLIPS:
        root = packages[clip.package].root
        audio, rate = sf.read(root / clip.path, dtype="float32", always_2d=True)
        audio = resample(audio[: int(clip.max_s * rate)].mean(axis=1), rate)
        audio = audio / max(float(np.sqrt(np.mean(audio**2))), 1e-9) * 0.1
        _write_wav(noise_dir / f"{clip.name}.wav", audio)
    for name, pkg in packages.items():
        if pkg.copyright_file and (pkg.root / pkg.copyright_file).is_file():
            shutil.copyfile(pkg.root / pkg.copyright_file, noise_dir / f"{name}.copyright")
    sources = [
        {
            **asdict(c),
            "name": c.name,
            "version": packages[c.package].version,
            "licence": NOISE_LICENCES[c.package],
        }
        for c in NOISE_CLIPS
    ]
    (noise_dir / "SOURCES.json").write_text(json.dumps(sources, indent=1) + "\n")
    marker.write_text(json.dumps(names))
    return names


# ----------------------------------------------------------------------------------------------
# Plans: every random decision is taken here, in the main process, from the seed.

SPEED_PROBABILITY = 0.3
#: (up, down) resampling ratios: the output is ``up/down`` times as long.
SPEED_RATIOS: tuple[tuple[int, int], ...] = ((10, 9), (20, 19), (19, 20), (9, 10))
REVERB_PROBABILITY = 0.4
RT60_RANGE_S = (0.15, 0.7)
DRR_RANGE_DB = (0.0, 10.0)
TELEPHONE_PROBABILITY = 0.15
TELEPHONE_BAND_HZ = (300.0, 3400.0)
SNR_RANGE_DB = (0.0, 20.0)
#: Noise kinds and their probabilities (``clip`` only with --noise mixed).
NOISE_KINDS_MIXED = {"clip": 0.5, "babble": 0.2, "generated": 0.3}
NOISE_KINDS_GENERATED = {"babble": 0.3, "generated": 0.7}
GENERATED_UNDER_CLIP_DB = (-15.0, -3.0)
BABBLE_TALKERS = (3, 6)
LEVEL_RANGE_DBFS = (-35.0, -15.0)  # active RMS of the final file
PEAK_LIMIT = 0.99
EDGE_SILENCE_S = (0.1, 0.4)
RATE_SPREAD = 0.15
PITCH_SPREAD = 3.0
SPEECH_LEVEL_DBFS = -20.0
#: Sound kept before the first word and after the last one of a sentence (at most).
EDGE_MARGIN_S = 0.08


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to render one file (a pure function of this plan)."""

    split: str
    name: str
    seed: tuple[int, ...]
    voice: Voice
    style: Style
    words: tuple[str, ...]
    lead_s: float
    tail_s: float
    speed: tuple[int, int] | None
    rt60_s: float | None
    drr_db: float | None
    noise: str  # "clip:<name>", "babble", "generated"
    snr_db: float
    generated_under_clip_db: float
    babble_voices: tuple[Voice, ...]
    babble_words: tuple[str, ...]
    telephone: bool
    level_dbfs: float

    @property
    def text(self) -> str:
        return sentence_text(self.words)


def sentence_text(words: Sequence[str]) -> str:
    """The text given to the engines: the words (lower case) and a full stop."""
    return " ".join(words) + "."


def split_tokens(words: Sequence[str], tokens_per_word: int) -> dict[str, list[str]]:
    """How many times each word is spoken in each split (``val``: about :data:`VAL_FRACTION`
    of a word's tokens, at least one when it has two or more)."""
    n_val = max(1, round(tokens_per_word * VAL_FRACTION)) if tokens_per_word >= 2 else 0
    return {
        "train": [w for w in words for _ in range(tokens_per_word - n_val)],
        "val": [w for w in words for _ in range(n_val)],
    }


def make_sentences(tokens: list[str], rng: np.random.Generator) -> list[list[str]]:
    """Shuffle the tokens and cut them into sentences of 3-7 words, no word twice in one (a
    repeat is exchanged with a later token, or else with a word of an earlier sentence)."""
    pool = [tokens[i] for i in rng.permutation(len(tokens))]
    lo, hi = WORDS_PER_SENTENCE
    sentences: list[list[str]] = []
    i = 0
    while i < len(pool):
        left = len(pool) - i
        n = int(rng.integers(lo, hi + 1))
        if left - n < lo:  # do not leave a remainder too short for a sentence
            n = left if left <= hi else left - lo
        sentence: list[str] = []
        for k in range(i, i + n):
            if pool[k] in sentence:
                j = next((j for j in range(i + n, len(pool)) if pool[j] not in sentence), None)
                if j is not None:
                    pool[k], pool[j] = pool[j], pool[k]
                else:
                    pool[k] = _exchange_with_earlier(pool[k], sentence, sentences)
            sentence.append(pool[k])
        i += n
        sentences.append(sentence)
    return sentences


def _exchange_with_earlier(word: str, sentence: list[str], earlier: list[list[str]]) -> str:
    """Put ``word`` into an earlier sentence that lacks it, in place of a word that ``sentence``
    lacks; return that word (``word`` itself if no exchange is possible: a repeat is left)."""
    for other in earlier:
        if word in other:
            continue
        for q, candidate in enumerate(other):
            if candidate not in sentence and candidate != word:
                other[q] = word
                return candidate
    return word


def _voice_weights(voices: Sequence[Voice], split: str) -> np.ndarray:
    shares = VOICE_SHARES[split]
    groups = Counter(voice_group(v) for v in voices)
    w = np.array([shares.get(voice_group(v), 0.0) / groups[voice_group(v)] for v in voices])
    if w.sum() == 0:
        w = np.ones(len(voices))
    return w / w.sum()


def plan_split(
    split: str,
    tokens: list[str],
    voices: Sequence[Voice],
    babble_pool: Sequence[str],
    noise_clips: Sequence[str],
    seed: int,
    rng: np.random.Generator,
) -> list[UtterancePlan]:
    """Plan the files of one split: sentences, a voice per sentence (a word's tokens go to
    different voices where possible), style and augmentation."""
    sentences = make_sentences(tokens, rng)
    weights = _voice_weights(voices, split)
    used: dict[str, set[int]] = {}
    kinds = NOISE_KINDS_MIXED if noise_clips else NOISE_KINDS_GENERATED
    kind_names, kind_p = list(kinds), np.array(list(kinds.values()))
    babble_candidates = [i for i, v in enumerate(voices) if v.engine == "espeak-ng"]
    plans = []
    for i, words in enumerate(sentences):
        taken = set().union(*(used.get(w, set()) for w in words))
        p = weights.copy()
        if taken and len(taken) < len(voices):
            p[list(taken)] = 0.0
            if p.sum() == 0:
                p = weights.copy()
        vi = int(rng.choice(len(voices), p=p / p.sum()))
        for w in words:
            used.setdefault(w, set()).add(vi)
        kind = kind_names[int(rng.choice(len(kind_names), p=kind_p / kind_p.sum()))]
        others = [j for j in babble_candidates if j != vi]
        if kind == "babble" and not others:
            kind = "generated"
        n_talkers = min(int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1)), len(others))
        babble_voices = (
            tuple(voices[j] for j in rng.choice(others, size=n_talkers, replace=False))
            if kind == "babble"
            else ()
        )
        babble_words = (
            tuple(str(babble_pool[j]) for j in rng.integers(len(babble_pool), size=12 * n_talkers))
            if kind == "babble" and babble_pool
            else ()
        )
        if kind == "babble" and not babble_words:
            kind, babble_voices = "generated", ()
        if kind == "clip":
            kind = f"clip:{noise_clips[int(rng.integers(len(noise_clips)))]}"
        speed = rng.random() < SPEED_PROBABILITY
        reverb = rng.random() < REVERB_PROBABILITY
        plans.append(
            UtterancePlan(
                split=split,
                name=f"{split}_{i + 1:05d}",
                seed=(seed, SPLIT_SEED_ID[split], i),
                voice=voices[vi],
                style=random_style(rng, rate_spread=RATE_SPREAD, pitch_spread=PITCH_SPREAD),
                words=tuple(words),
                lead_s=float(rng.uniform(*EDGE_SILENCE_S)),
                tail_s=float(rng.uniform(*EDGE_SILENCE_S)),
                speed=SPEED_RATIOS[int(rng.integers(len(SPEED_RATIOS)))] if speed else None,
                rt60_s=float(rng.uniform(*RT60_RANGE_S)) if reverb else None,
                drr_db=float(rng.uniform(*DRR_RANGE_DB)) if reverb else None,
                noise=kind,
                snr_db=round(float(rng.uniform(*SNR_RANGE_DB)), 2),
                generated_under_clip_db=float(rng.uniform(*GENERATED_UNDER_CLIP_DB)),
                babble_voices=babble_voices,
                babble_words=babble_words,
                telephone=bool(rng.random() < TELEPHONE_PROBABILITY),
                level_dbfs=float(rng.uniform(*LEVEL_RANGE_DBFS)),
            )
        )
    return plans


# ----------------------------------------------------------------------------------------------
# Engines with word times (in-process libespeak-ng and libflite, festival through Scheme).
# Each returns (mono float32 audio, sample rate, [(word, start_s, end_s)]) or raises
# TimingError when the engine's word items do not match the words of the text.


class TimingError(RuntimeError):
    """The engine's words do not line up with the text's (the sentence is made of chunks)."""


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_ESPEAK_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)
_EV_WORD, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = 1, 5, 6, 7


class _Espeak:
    """libespeak-ng in synchronous mode, with word and phoneme events (one per process)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        # AUDIO_OUTPUT_SYNCHRONOUS, phoneme events | don't exit on errors
        self.rate = int(self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000))
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, str]] = []
        self._callback = _ESPEAK_CALLBACK(self._on_audio)  # kept alive on the instance
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).astype(np.float32) / 32768)
        i = 0
        while events[i].type != 0:
            e = events[i]
            name = bytes(e.id).split(b"\0")[0].decode("latin-1") if e.type == _EV_PHONEME else ""
            self._events.append((e.type, e.text_position, e.sample, name))
            i += 1
        return 0

    def synth(self, text: str, voice: Voice, style: Style) -> tuple[np.ndarray, list[tuple]]:
        """Audio at :attr:`rate` and the events (type, text position, sample, phoneme)."""
        self._chunks, self._events = [], []
        self.lib.espeak_SetVoiceByName(voice.voice_id.encode())
        # the same speed and pitch as data_prep.tts.espeak_command (the command line)
        self.lib.espeak_SetParameter(1, round(175 * style.rate), 0)
        self.lib.espeak_SetParameter(3, int(np.clip(50 + 6 * style.semitones, 0, 99)), 0)
        data = text.encode("utf-8")
        if self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None) != 0:
            raise RuntimeError(f"espeak_Synth failed on {text!r}")
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return audio, list(self._events)


_ESPEAK: _Espeak | None = None


def _espeak_engine() -> _Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    return _ESPEAK


def _is_pause(phoneme: str) -> bool:
    return phoneme.startswith("_")


def espeak_word_times(
    text: str, words: Sequence[str], voice: Voice, style: Style
) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """espeak-ng synthesis with word times: a word starts at its WORD event and ends at the
    next WORD event or at the first pause phoneme after its own phonemes, whichever is first."""
    engine = _espeak_engine()
    audio, events = engine.synth(text, voice, style)
    spans, pos = [], 0
    lower = text.lower()
    for w in words:
        start = lower.index(w, pos)
        spans.append((start, start + len(w)))
        pos = start + len(w)
    starts: list[int | None] = [None] * len(words)
    order: list[int] = []
    for e_type, text_pos, sample, _ in events:
        if e_type != _EV_WORD:
            continue
        # 1-based character position (0 is seen for the first word of some sentences)
        char = max(text_pos - 1, spans[0][0])
        k = next((i for i, (a, b) in enumerate(spans) if a <= char < b), None)
        if k is None or starts[k] is not None:
            raise TimingError(f"espeak-ng word event at character {text_pos} of {text!r}")
        starts[k] = sample
        order.append(k)
    if any(s is None for s in starts) or order != sorted(order):
        raise TimingError(f"espeak-ng reported {len(order)} word events for {len(words)} words")
    out = []
    for k, w in enumerate(words):
        onset = int(starts[k])  # type: ignore[arg-type]
        limit = int(starts[k + 1]) if k + 1 < len(words) else len(audio)  # type: ignore[arg-type]
        seen_phone = False
        offset = limit
        for e_type, _, sample, name in events:
            if e_type != _EV_PHONEME or sample < onset or sample > limit:
                continue
            if not _is_pause(name):
                seen_phone = True
            elif seen_phone:
                offset = sample
                break
        out.append((w, onset / engine.rate, min(offset, limit) / engine.rate))
    return audio, engine.rate, out


class _FliteWave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _FliteVoice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p)]


class _Flite:
    """libflite with its US English voices, loaded once per process."""

    def __init__(self) -> None:
        mode = ctypes.RTLD_GLOBAL
        self.lib = lib = ctypes.CDLL("libflite.so.1", mode=mode)
        ctypes.CDLL("libflite_usenglish.so.1", mode=mode)
        ctypes.CDLL("libflite_cmulex.so.1", mode=mode)
        lib.flite_init()
        for name, res, args in (
            ("flite_synth_text", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
            ("utt_wave", ctypes.POINTER(_FliteWave), [ctypes.c_void_p]),
            ("utt_relation", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
            ("relation_head", ctypes.c_void_p, [ctypes.c_void_p]),
            ("item_next", ctypes.c_void_p, [ctypes.c_void_p]),
            ("ffeature_float", ctypes.c_float, [ctypes.c_void_p, ctypes.c_char_p]),
            ("ffeature_string", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_char_p]),
            ("flite_feat_set_float", None, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]),
            ("delete_utterance", None, [ctypes.c_void_p]),
        ):
            getattr(lib, name).restype = res
            getattr(lib, name).argtypes = args
        self.voices: dict[str, int] = {}

    def voice(self, voice_id: str) -> int:
        if voice_id not in self.voices:
            vlib = ctypes.CDLL(f"libflite_cmu_us_{voice_id}.so.1", mode=ctypes.RTLD_GLOBAL)
            register = getattr(vlib, f"register_cmu_us_{voice_id}")
            register.restype, register.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
            self.voices[voice_id] = register(None)
        return self.voices[voice_id]

    def synth(
        self, text: str, voice: Voice, style: Style
    ) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
        v = self.voice(voice.voice_id)
        features = ctypes.cast(v, ctypes.POINTER(_FliteVoice)).contents.features
        # the same settings as data_prep.tts.flite_command (the command line)
        self.lib.flite_feat_set_float(features, b"duration_stretch", round(1 / style.rate, 3))
        if voice.base_f0 is not None:
            f0 = round(voice.base_f0 * 2 ** (style.semitones / 12), 1)
            self.lib.flite_feat_set_float(features, b"int_f0_target_mean", f0)
        utt = self.lib.flite_synth_text(text.encode("utf-8"), v)
        try:
            wave = self.lib.utt_wave(utt).contents
            audio = np.ctypeslib.as_array(wave.samples, (wave.num_samples,)).astype(np.float32)
            audio /= 32768
            words = []
            item = self.lib.relation_head(self.lib.utt_relation(utt, b"Word"))
            while item:
                name = (self.lib.ffeature_string(item, b"name") or b"").decode("latin-1")
                start = self.lib.ffeature_float(
                    item, b"R:SylStructure.daughter1.daughter1.R:Segment.p.end"
                )
                end = self.lib.ffeature_float(
                    item, b"R:SylStructure.daughtern.daughtern.R:Segment.end"
                )
                words.append((name, float(start), float(end)))
                item = self.lib.item_next(item)
            return audio, int(wave.sample_rate), words
        finally:
            self.lib.delete_utterance(utt)


_FLITE: _Flite | None = None


def flite_word_times(
    text: str, words: Sequence[str], voice: Voice, style: Style
) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """flite synthesis with the start (end of the previous segment) and end of each Word."""
    global _FLITE
    if _FLITE is None:
        _FLITE = _Flite()
    audio, rate, items = _FLITE.synth(text, voice, style)
    return audio, rate, _match_items(items, words, "flite")


FESTIVAL_SCRIPT = """(voice_{voice})
(Parameter.set 'Duration_Stretch {stretch:.3f})
(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std 15) (model_f0_mean 170) (model_f0_std 34)))
(set! kws_utt (utt.synth (Utterance Text "{text}")))
(utt.save.wave kws_utt "{wav}" 'riff)
(set! kws_fd (fopen "{times}" "w"))
(mapcar (lambda (w) (format kws_fd "%s %s %s\\n" (item.name w)
  (item.feat w "R:SylStructure.daughter1.daughter1.R:Segment.p.end")
  (item.feat w "R:SylStructure.daughtern.daughtern.R:Segment.end")))
  (utt.relation.items kws_utt 'Word))
(fclose kws_fd)
"""


def festival_word_times(
    text: str, words: Sequence[str], voice: Voice, style: Style, tmp_dir: Path
) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """festival synthesis (the prosody settings of data_prep.tts.festival_command for diphone
    voices) writing the start and end of every Word item."""
    if '"' in text or "\\" in text:
        raise TimingError("quote in festival text")
    wav, times, script = tmp_dir / "fest.wav", tmp_dir / "fest.txt", tmp_dir / "fest.scm"
    script.write_text(
        FESTIVAL_SCRIPT.format(
            voice=voice.voice_id,
            stretch=1 / style.rate,
            f0=(voice.base_f0 or 105.0) * 2 ** (style.semitones / 12),
            text=text,
            wav=wav,
            times=times,
        )
    )
    result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
    if result.returncode != 0 or not wav.is_file() or not times.is_file():
        raise RuntimeError(f"festival failed on {text!r}: {result.stderr.strip()[-300:]}")
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    items = []
    for line in times.read_text().splitlines():
        name, start, end = line.split()
        items.append((name, float(start), float(end)))
    wav.unlink()
    times.unlink()
    return audio.mean(axis=1), int(rate), _match_items(items, words, "festival")


def _match_items(
    items: list[tuple[str, float, float]], words: Sequence[str], engine: str
) -> list[tuple[str, float, float]]:
    # homographs may be renamed (flite: read -> red, lead -> led): same count, same initial
    names = [n.lower() for n, _, _ in items]
    if len(names) != len(words) or any(n[:1] != w[:1] for n, w in zip(names, words, strict=True)):
        raise TimingError(f"{engine} words {[n for n, _, _ in items]} != {list(words)}")
    return [(w, s, e) for w, (_, s, e) in zip(words, items, strict=True)]


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a forked child process, its result (or exception) sent back pickled.

    libespeak-ng and libflite keep state from one synthesis to the next (espeak-ng applies a new
    speaking rate late, flite's excitation noise goes on), so the same text gives other audio
    after another one. A fresh process per sentence gives what the command line gives, whatever
    ran before. The parent never loads the engines' state; the fork costs a few milliseconds.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps(("ok", fn(*args)))
            except BaseException as err:  # sent to the parent, raised there
                payload = pickle.dumps(("error", err))
            with os.fdopen(write_fd, "wb") as handle:
                handle.write(payload)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"{getattr(fn, '__name__', fn)} died in its child process")
    status, value = pickle.loads(data)
    if status == "error":
        raise value
    return value


def synthesize_with_times(
    words: Sequence[str], voice: Voice, style: Style, tmp_dir: Path
) -> tuple[np.ndarray, list[tuple[int, int]], dict[str, list[float]]]:
    """Speak ``words`` as one sentence; return 16 kHz audio (silence trimmed, levelled), the
    engine's (start, end) sample of every word and the :func:`timing_check` of these times on
    the untrimmed audio. Raises TimingError when the engine's times are unusable."""
    text = sentence_text(words)
    if voice.engine == "espeak-ng":
        audio, rate, times = in_fresh_process(espeak_word_times, text, words, voice, style)
    elif voice.engine == "flite":
        audio, rate, times = in_fresh_process(flite_word_times, text, words, voice, style)
    elif voice.engine == "festival":
        audio, rate, times = festival_word_times(text, words, voice, style, tmp_dir)
    else:
        raise TimingError(f"{voice.engine} reports no word times")
    audio = resample(np.asarray(audio, dtype=np.float32), rate)
    spans = [(round(s * SAMPLE_RATE), round(e * SAMPLE_RATE)) for _, s, e in times]
    spans = [(max(0, a), min(b, len(audio))) for a, b in spans]
    if any(b - a < int(0.02 * SAMPLE_RATE) for a, b in spans) or any(
        b0 > a1 for (_, b0), (a1, _) in zip(spans, spans[1:], strict=False)
    ):
        raise TimingError(f"implausible word times {spans}")
    trimmed, spans, start = _trim_keeping(audio, spans)
    check = timing_check(audio, [(a + start, b + start) for a, b in spans])
    gain = 10 ** (SPEECH_LEVEL_DBFS / 20) / max(active_rms(trimmed), 1e-9)
    return trimmed * gain, spans, check


def _trim_keeping(
    audio: np.ndarray, spans: list[tuple[int, int]]
) -> tuple[np.ndarray, list[tuple[int, int]], int]:
    """Cut the leading/trailing frames quieter than -40 dB re. the loudest frame (as
    data_prep.tts.trim does, but never inside a word) and anything more than
    :data:`EDGE_MARGIN_S` before the first word or after the last (the kal diphone voices hum in
    the leading pause), fade the ends, shift the spans; also return the first sample kept. The
    first word starts no earlier than the sound (an engine may start a sentence's first word at
    the end of the leading pause, before a stop's silent closure)."""
    hop = SAMPLE_RATE // 100
    n = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (-40 / 20))
    margin = int(EDGE_MARGIN_S * SAMPLE_RATE)
    start = max(int(active[0]) * hop, spans[0][0] - margin)
    end = max(min((int(active[-1]) + 1) * hop, spans[-1][1] + margin), spans[-1][1])
    out = audio[start:end].copy()
    fade = np.sin(np.linspace(0, np.pi / 2, int(0.005 * SAMPLE_RATE))) ** 2
    out[: len(fade)] *= fade
    out[len(out) - len(fade) :] *= fade[::-1]
    shifted = [(max(a - start, 0), b - start) for a, b in spans]
    if any(b - a < int(0.02 * SAMPLE_RATE) for a, b in shifted):
        raise TimingError(f"a word before the first sound: {spans}, sound from {start}")
    return out, shifted, start


def synthesize_chunks(
    words: Sequence[str], voice: Voice, style: Style, tmp_dir: Path, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Each word synthesised on its own (data_prep.tts.speak: trimmed, levelled), joined by
    0-150 ms pauses: exact times, no coarticulation."""
    parts, spans, pos = [], [], 0
    for i, w in enumerate(words):
        if i:
            pause = np.zeros(int(rng.uniform(0.0, 0.15) * SAMPLE_RATE), np.float32)
            parts.append(pause)
            pos += len(pause)
        audio = speak(w, voice, style, tmp_dir, SPEECH_LEVEL_DBFS)
        parts.append(audio)
        spans.append((pos, pos + len(audio)))
        pos += len(audio)
    return np.concatenate(parts).astype(np.float32), spans


# ----------------------------------------------------------------------------------------------
# Rendering (runs in worker processes; each job is a pure function of its plan).

_NOISE_CACHE: dict[str, np.ndarray] = {}


def telephone(audio: np.ndarray) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band-pass, then down to 8 kHz and back to 16 kHz."""
    sos = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    band = sosfiltfilt(sos, audio)
    g = gcd(8000, SAMPLE_RATE)
    narrow = resample_poly(band, 8000 // g, SAMPLE_RATE // g)
    back = resample_poly(narrow, SAMPLE_RATE // g, 8000 // g)[: len(audio)]
    return np.pad(back, (0, len(audio) - len(back))).astype(np.float32)


def _espeak_talkers(texts: list[str], voices: list[Voice], styles: list[Style]) -> list[np.ndarray]:
    engine = _espeak_engine()
    return [
        resample(engine.synth(t, v, s)[0], engine.rate)
        for t, v, s in zip(texts, voices, styles, strict=True)
    ]


def babble(plan: UtterancePlan, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS babble: each of the plan's babble voices speaks a string of words that are not in
    the vocabulary (espeak-ng, one fresh process for all talkers), tiled from a random start; the
    talkers are summed with levels within 6 dB of each other."""
    out = np.zeros(n, np.float32)
    per = max(1, len(plan.babble_words) // max(1, len(plan.babble_voices)))
    texts = [
        " ".join(plan.babble_words[k * per : (k + 1) * per]) + "."
        for k in range(len(plan.babble_voices))
    ]
    styles = [random_style(rng, rate_spread=RATE_SPREAD, pitch_spread=PITCH_SPREAD) for _ in texts]
    talkers = in_fresh_process(_espeak_talkers, texts, list(plan.babble_voices), styles)
    for audio in talkers:
        if len(audio) < 2 * int(0.05 * SAMPLE_RATE) + 2:
            continue
        talker = tile(audio, n, rng)
        out += talker * 10 ** (rng.uniform(-6, 0) / 20)
    rms = float(np.sqrt(np.mean(out**2)))
    return out / rms if rms > 0 else background_noise(rng, n)


def make_noise(
    plan: UtterancePlan, n: int, noise_dir: Path, rng: np.random.Generator
) -> np.ndarray:
    """Unit-RMS background noise of the plan's kind."""
    if plan.noise.startswith("clip:"):
        name = plan.noise.split(":", 1)[1]
        if name not in _NOISE_CACHE:
            _NOISE_CACHE[name] = sf.read(noise_dir / f"{name}.wav", dtype="float32")[0]
        noise = tile(_NOISE_CACHE[name], n, rng)
        noise = noise + background_noise(rng, n) * 10 ** (plan.generated_under_clip_db / 20)
    elif plan.noise == "babble":
        noise = babble(plan, n, rng)
    else:
        exponent = float(rng.choice([0.0, 1.0, 2.0]))
        noise = background_noise(rng, n) if rng.random() < 0.5 else colored_noise(rng, n, exponent)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


CHECK_KINDS = ("before_onset", "after_offset", "after_onset", "before_offset")


def timing_check(audio: np.ndarray, spans: list[tuple[int, int]]) -> dict[str, list[float]]:
    """Energy around the word boundaries of the dry, untrimmed speech (dB re. its active RMS) in
    30 ms windows: just before each onset and just after each offset that has a pause (60+ ms
    without a word) on that side, which should be silence, and just after each onset and just
    before each offset, which should be speech."""
    ref = max(active_rms(audio), 1e-9)
    w = int(0.03 * SAMPLE_RATE)

    def level(a: int, b: int) -> float | None:
        a, b = max(a, 0), min(b, len(audio))
        if b - a < w // 2:
            return None
        return float(20 * np.log10(max(np.sqrt(np.mean(audio[a:b] ** 2)), 1e-9) / ref))

    out: dict[str, list[float]] = {k: [] for k in CHECK_KINDS}
    pause = int(0.06 * SAMPLE_RATE)
    for i, (a, b) in enumerate(spans):
        prev_end = spans[i - 1][1] if i else -(10**9)
        next_start = spans[i + 1][0] if i + 1 < len(spans) else 10**9
        for lv, ok, kind in (
            (level(a - w, a), a - prev_end >= pause, "before_onset"),
            (level(b, b + w), next_start - b >= pause, "after_offset"),
            (level(a, a + w), True, "after_onset"),
            (level(b - w, b), True, "before_offset"),
        ):
            if ok and lv is not None:
                out[kind].append(round(max(lv, -99.0), 1))
    return out


def render_utterance(plan: UtterancePlan, out_dir: Path) -> dict[str, Any]:
    """Synthesise, augment and write one file; return its rows."""
    rng = np.random.default_rng(plan.seed)
    with tempfile.TemporaryDirectory(prefix="kws_words_") as tmp:
        try:
            speech, spans, check = synthesize_with_times(
                plan.words, plan.voice, plan.style, Path(tmp)
            )
            timing = "engine"
        except TimingError as err:
            log.debug("%s: %s; using chunks", plan.name, err)
            speech, spans = synthesize_chunks(plan.words, plan.voice, plan.style, Path(tmp), rng)
            timing = "chunks"
            check = {k: [] for k in CHECK_KINDS}
    lead, tail = int(plan.lead_s * SAMPLE_RATE), int(plan.tail_s * SAMPLE_RATE)
    speech = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    spans = [(a + lead, b + lead) for a, b in spans]
    if plan.speed is not None:
        up, down = plan.speed
        speech = resample_poly(speech, up, down).astype(np.float32)
        spans = [(round(a * up / down), round(b * up / down)) for a, b in spans]
    if plan.rt60_s is not None:  # the dry onset/offset are kept (the direct sound comes first)
        rir = room_impulse_response(rng, plan.rt60_s, plan.drr_db or 6.0)
        speech = fftconvolve(speech, rir)[: len(speech)].astype(np.float32)
    noise = make_noise(plan, len(speech), out_dir / "noise", rng)
    mixed = speech + noise * (active_rms(speech) / 10 ** (plan.snr_db / 20))
    if plan.telephone:
        mixed = telephone(mixed)
    gain = 10 ** (plan.level_dbfs / 20) / max(active_rms(mixed), 1e-9)
    gain = min(gain, PEAK_LIMIT / max(float(np.max(np.abs(mixed))), 1e-9))
    audio = (mixed * gain).astype(np.float32)
    rel = f"audio/{plan.split}/{plan.name}.wav"
    _write_wav(out_dir / rel, audio)
    n = len(audio)
    spans = [(min(a, n - 1), min(b, n)) for a, b in spans]
    return {
        "file": rel,
        "split": plan.split,
        "voice": plan.voice.name,
        "engine": plan.voice.engine,
        "text": plan.text,
        "timing": timing,
        "duration": n / SAMPLE_RATE,
        "words": [
            {"word": w, "onset": a / SAMPLE_RATE, "offset": b / SAMPLE_RATE}
            for w, (a, b) in zip(plan.words, spans, strict=True)
        ],
        "rate": round(plan.style.rate, 3),
        "semitones": round(plan.style.semitones, 2),
        "speed": round(plan.speed[1] / plan.speed[0], 4) if plan.speed else 1.0,
        "rt60_s": round(plan.rt60_s, 3) if plan.rt60_s else 0.0,
        "drr_db": round(plan.drr_db, 2) if plan.drr_db is not None else "",
        "noise": plan.noise,
        "babble_voices": ";".join(v.name for v in plan.babble_voices),
        "snr_db": plan.snr_db,
        "telephone": int(plan.telephone),
        "level_dbfs": round(20 * float(np.log10(max(active_rms(audio), 1e-9))), 2),
        "timing_check": check,
    }


# ----------------------------------------------------------------------------------------------
# Driver.


@dataclass
class GenerationConfig:
    """The arguments that determine the output (the cache key)."""

    seed: int = 0
    n_words: int = DEFAULT_WORDS
    tokens_per_word: int = DEFAULT_TOKENS_PER_WORD
    noise: str = "mixed"
    train_voices: list[str] = field(default_factory=list)
    val_voices: list[str] = field(default_factory=list)
    vocabulary: list[str] | None = None  # given explicitly (tests), else from wordfreq
    generator_version: str = GENERATOR_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prepare_out_dir(out_dir: Path, config: GenerationConfig) -> bool:
    """True if ``out_dir`` already holds this exact output; otherwise clear what an earlier run
    of this generator left (refusing a non-empty folder it did not write)."""
    return prepare_out_dir(out_dir, config.to_dict(), GENERATOR, OWNED)


def make_kws_words(
    out_dir: Path,
    *,
    seed: int = 0,
    n_words: int = DEFAULT_WORDS,
    tokens_per_word: int = DEFAULT_TOKENS_PER_WORD,
    noise: str = "mixed",
    download: bool = False,
    sources_dir: Path = DEFAULT_SOURCES,
    jobs: int = 2,
    vocabulary: Sequence[str] | None = None,
    hook: Hook | None = None,
) -> dict[str, Any]:
    """Generate the corpus under ``out_dir`` (see the module docstring) and return its manifest.
    Does nothing but return the existing manifest when ``out_dir`` already holds the complete
    output for the same arguments.

    ``vocabulary`` replaces the wordfreq list (every word must pass :func:`exclusion_reason`);
    ``noise`` is ``"mixed"`` (Debian clips from ``sources_dir``, fetched with ``apt-get download``
    when ``download``; plus babble and generated noise) or ``"generated"`` (no package needed).
    """
    if n_words < 1 or tokens_per_word < 1:
        raise GenerationError("make_kws_words: --words and --tokens-per-word must be positive")
    if noise not in ("mixed", "generated"):
        raise GenerationError("make_kws_words: --noise must be 'mixed' or 'generated'")
    check_voices()
    train_voices, notes = available_voices(TRAIN_VOICES)
    val_voices, val_notes = available_voices(VAL_VOICES)
    notes += val_notes
    if not train_voices or not val_voices or shutil.which("espeak-ng") is None:
        raise GenerationError(
            "make_kws_words: the TTS engines are missing; "
            "apt-get install -y espeak-ng flite festival festvox-kallpc16k"
        )
    if vocabulary is not None:
        bad = {w: r for w in vocabulary if (r := exclusion_reason(w))}
        if bad:
            raise GenerationError(f"make_kws_words: excluded words in the vocabulary: {bad}")
        words, babble_pool, dropped = list(vocabulary)[:n_words], [], {}
        lexicon_used = False
    config = GenerationConfig(
        seed=seed,
        n_words=n_words,
        tokens_per_word=tokens_per_word,
        noise=noise,
        train_voices=[v.name for v in train_voices],
        val_voices=[v.name for v in val_voices],
        vocabulary=list(vocabulary) if vocabulary is not None else None,
    )
    out_dir = Path(out_dir)
    if _prepare_out_dir(out_dir, config):
        log.info("%s is up to date (delete %s to regenerate)", out_dir, COMPLETE_MARKER)
        return json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    start = time.perf_counter()
    if vocabulary is None:
        lexicon = cmu_lexicon()
        lexicon_used = lexicon is not None
        candidates = candidate_words(wordfreq_ranked(), lexicon)
        words, babble_pool, dropped = select_vocabulary(candidates, n_words, N_BABBLE_WORDS)
    noise_clips = (
        fetch_noises(out_dir / "noise", Path(sources_dir), download) if noise == "mixed" else []
    )

    rng = np.random.default_rng(seed)
    tokens = split_tokens(words, tokens_per_word)
    pools = {"train": train_voices, "val": val_voices}
    plans = {
        split: plan_split(split, tokens[split], pools[split], babble_pool, noise_clips, seed, rng)
        for split in SPLITS
    }
    jobs_list: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
        (render_utterance, (p, out_dir)) for split in SPLITS for p in plans[split]
    ]
    results = _run_jobs(jobs_list, jobs, hook)
    _check_outputs(out_dir, results)
    write_tables(out_dir, results)
    manifest: dict[str, Any] = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "command": f"python -m {GENERATOR} --out {out_dir} --seed {seed} --words {n_words} "
        f"--tokens-per-word {tokens_per_word} --noise {noise}",
        "word_source": WORD_SOURCE
        if vocabulary is None
        else {"name": "explicit vocabulary (make_kws_words(vocabulary=...))"},
        "lexicon_filter": CMU_SOURCE if lexicon_used else None,
        "wordfreq_version": package_version("wordfreq"),
        "vocabulary": words,
        "babble_words": len(babble_pool),
        "exclusions": {
            "rule": "keywords, words of multi-word keywords and near-words of the demo, KWS-TTS "
            "and KWS-DailyTalk; their -s/-es/-ed/-ing inflections (shared stem, either way); "
            f"words containing a keyword word of {MIN_SUBSTRING_KEYWORD}+ letters",
            "excluded_words": excluded_words(),
            "dropped_candidates": dropped,
        },
        "voices": {
            "train": config.train_voices,
            "val": config.val_voices,
            "not_available": notes,
            "benchmark_eval_voices_avoided": [v.name for v in BENCHMARK_EVAL_VOICES],
            "shares": VOICE_SHARES,
        },
        "engines": engine_versions((*train_voices, *val_voices)),
        "sample_rate": SAMPLE_RATE,
        "augmentation": {
            "rate_spread": RATE_SPREAD,
            "pitch_spread_semitones": PITCH_SPREAD,
            "speed": {
                "probability": SPEED_PROBABILITY,
                "factors": [round(d / u, 4) for u, d in SPEED_RATIOS],
            },
            "reverb": {
                "probability": REVERB_PROBABILITY,
                "rt60_range_s": list(RT60_RANGE_S),
                "drr_range_db": list(DRR_RANGE_DB),
                "rir": "data_prep.make_kws_tts.room_impulse_response",
            },
            "telephone": {
                "probability": TELEPHONE_PROBABILITY,
                "band_hz": list(TELEPHONE_BAND_HZ),
                "resampled_via_hz": 8000,
            },
            "snr_range_db": list(SNR_RANGE_DB),
            "noise_kinds": NOISE_KINDS_MIXED if noise_clips else NOISE_KINDS_GENERATED,
            "level_range_dbfs": list(LEVEL_RANGE_DBFS),
        },
        "noise": {
            "mode": noise,
            "debian_clips": noise_clips,
            "packages": sorted({c.package for c in NOISE_CLIPS}) if noise_clips else [],
            "licences": NOISE_LICENCES if noise_clips else {},
            "refused_packages": list(RESERVED_PACKAGES) + sorted(benchmark_noise_packages()),
            "babble": "3-6 other voices of the same split (espeak-ng) speaking words ranked after "
            "the vocabulary (same exclusions)",
            "generated": "kwsos.noise background_noise (pink+brown+hum+room tone) or white/pink/brown",
        },
        "statistics": statistics(words, results),
        "timing_check": timing_summary(results),
        "generation_time_s": round(time.perf_counter() - start, 1),
        "jobs": jobs,
    }
    _write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    _write_text(out_dir / COMPLETE_MARKER, json.dumps(config.to_dict()))
    (out_dir / PARTIAL_MARKER).unlink(missing_ok=True)
    return manifest


def _check_outputs(out_dir: Path, results: list[dict[str, Any]]) -> None:
    """Sanity checks before the tables are written; raise AssertionError on a failure."""
    train = {r["voice"] for r in results if r["split"] == "train"}
    val = {r["voice"] for r in results if r["split"] == "val"}
    if train & val:
        raise AssertionError(f"voices in both splits: {train & val}")
    for r in results:
        ends = [(w["onset"], w["offset"]) for w in r["words"]]
        if any(not 0 <= a < b <= r["duration"] + 1e-9 for a, b in ends):
            raise AssertionError(f"word time outside {r['file']}: {ends}")
        if any(b0 > a1 + 1e-9 for (_, b0), (a1, _) in zip(ends, ends[1:], strict=False)):
            raise AssertionError(f"overlapping words in {r['file']}")
        if not (out_dir / r["file"]).is_file():
            raise AssertionError(f"missing {r['file']}")


def write_tables(out_dir: Path, results: list[dict[str, Any]]) -> None:
    """words.csv and utterances.csv."""
    _write_csv(
        out_dir / "words.csv",
        ["file", "word", "onset", "offset", "voice", "split", "timing"],
        (
            [
                r["file"],
                w["word"],
                f"{w['onset']:.3f}",
                f"{w['offset']:.3f}",
                r["voice"],
                r["split"],
                r["timing"],
            ]
            for r in results
            for w in r["words"]
        ),
    )
    columns = ["file", "split", "duration", "voice", "engine", "text", "n_words", "timing",
               "rate", "semitones", "speed", "rt60_s", "drr_db", "noise", "babble_voices",
               "snr_db", "telephone", "level_dbfs"]  # fmt: skip
    _write_csv(
        out_dir / "utterances.csv",
        columns,
        (
            [
                f"{r['duration']:.3f}"
                if c == "duration"
                else len(r["words"])
                if c == "n_words"
                else r[c]
                for c in columns
            ]
            for r in results
        ),
    )


def statistics(words: Sequence[str], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, durations and shares per split."""
    stats: dict[str, Any] = {"vocabulary_size": len(words)}
    for split in SPLITS:
        rs = [r for r in results if r["split"] == split]
        tokens = Counter(w["word"] for r in rs for w in r["words"])
        stats[split] = {
            "files": len(rs),
            "hours": round(sum(r["duration"] for r in rs) / 3600, 3),
            "word_tokens": sum(tokens.values()),
            "distinct_words": len(tokens),
            "voices": len({r["voice"] for r in rs}),
            "files_per_engine": dict(Counter(r["engine"] for r in rs)),
            "engine_timing_share": round(float(np.mean([r["timing"] == "engine" for r in rs])), 4)
            if rs
            else 0.0,
            "noise_kinds": dict(Counter(r["noise"].split(":")[0] for r in rs)),
            "reverberant_share": round(float(np.mean([r["rt60_s"] > 0 for r in rs])), 3)
            if rs
            else 0.0,
            "telephone_share": round(float(np.mean([r["telephone"] for r in rs])), 3)
            if rs
            else 0.0,
            "speed_perturbed_share": round(float(np.mean([r["speed"] != 1.0 for r in rs])), 3)
            if rs
            else 0.0,
            "distinct_voices_per_word_mean": round(
                float(
                    np.mean(
                        [
                            len({r["voice"] for r in rs for x in r["words"] if x["word"] == w})
                            for w in list(tokens)[:200]
                        ]
                    )
                ),
                2,
            )
            if tokens
            else 0.0,
        }
    return stats


def timing_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per engine, over the engine-timed files: percentiles of the :func:`timing_check` levels
    and the share of windows on the expected side of -30 dB."""
    out: dict[str, Any] = {
        "what": "30 ms windows on the dry untrimmed speech, dB re. its active RMS: before_onset "
        "and after_offset next to a pause (should be quiet), after_onset and before_offset "
        "(should be speech); share_quiet = share below -30 dB"
    }
    for engine in sorted({r["engine"] for r in results}):
        rs = [r for r in results if r["engine"] == engine and r["timing"] == "engine"]
        if not rs:
            continue
        entry: dict[str, Any] = {"files": len(rs)}
        for kind in CHECK_KINDS:
            values = np.array([v for r in rs for v in r["timing_check"][kind]])
            if len(values):
                entry[kind] = {
                    "n": len(values),
                    "p10_db": round(float(np.percentile(values, 10)), 1),
                    "median_db": round(float(np.median(values)), 1),
                    "p90_db": round(float(np.percentile(values, 90)), 1),
                    "share_quiet": round(float(np.mean(values < -30)), 3),
                }
        out[engine] = entry
    return out


# ----------------------------------------------------------------------------------------------
# Cross-check of the engines' word times against pocketsphinx forced alignment.


def _align(
    decoder: Any, audio: np.ndarray, words: Sequence[str]
) -> list[tuple[float, float]] | None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        segs = [
            (s.start_frame / 100, (s.end_frame + 1) / 100)
            for s in (decoder.seg() or [])
            if not s.word.startswith(("<", "[", "+"))
        ]
    except RuntimeError:
        return None
    return segs if len(segs) == len(words) else None


def check_timing(out_dir: Path, n_per_engine: int = 60, seed: int = 0) -> dict[str, Any]:
    """Synthesise ``n_per_engine`` dry sentences per engine (corpus voices and words, random
    style), force-align each with pocketsphinx and compare the word times; write
    ``timing_check.json`` and, with matplotlib, ``timing_examples.png`` (spectrograms of two
    sentences per engine with both sets of times) to ``out_dir``; return the summary."""
    if importlib.util.find_spec("pocketsphinx") is None:
        raise GenerationError(
            "make_kws_words: --check-timing needs pocketsphinx; pip install pocketsphinx"
        )
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    words, _, _ = select_vocabulary(
        candidate_words(wordfreq_ranked(), cmu_lexicon()), DEFAULT_WORDS
    )
    words = [w for w in words if decoder.lookup_word(w) is not None]
    voices, _ = available_voices((*TRAIN_VOICES, *VAL_VOICES))
    rng = np.random.default_rng(seed)
    pad = int(0.3 * SAMPLE_RATE)
    summary: dict[str, Any] = {
        "what": "engine word times minus pocketsphinx forced-alignment times (seconds) on dry "
        "sentences padded with 0.3 s of silence; positive = the engine's time is later",
        "aligner": f"pocketsphinx {package_version('pocketsphinx')} (bundled en-us model)",
    }
    examples: list[tuple[str, np.ndarray, list, list, list[str]]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for engine in ("espeak-ng", "flite", "festival"):
        pool = [v for v in voices if v.engine == engine]
        if not pool:
            continue
        on, off, failed, checks = [], [], 0, []
        for i in range(n_per_engine):
            voice = pool[i % len(pool)]
            sentence = [
                str(w) for w in rng.choice(words, size=int(rng.integers(3, 8)), replace=False)
            ]
            style = random_style(rng, rate_spread=RATE_SPREAD, pitch_spread=PITCH_SPREAD)
            with tempfile.TemporaryDirectory(prefix="kws_words_") as tmp:
                try:
                    audio, spans, check = synthesize_with_times(sentence, voice, style, Path(tmp))
                except TimingError:
                    failed += 1
                    continue
            checks.append({"engine": engine, "timing": "engine", "timing_check": check})
            noise = np.random.default_rng(i).standard_normal(len(audio) + 2 * pad) * 1e-4
            padded = np.concatenate([np.zeros(pad), audio, np.zeros(pad)]) + noise
            segs = _align(decoder, padded, sentence)
            if segs is None:
                failed += 1
                continue
            for (a, b), (sa, sb) in zip(spans, segs, strict=True):
                on.append((a + pad) / SAMPLE_RATE - sa)
                off.append((b + pad) / SAMPLE_RATE - sb)
            if sum(e[0].startswith(engine) for e in examples) < 2:
                examples.append(
                    (voice.name, padded, [(a + pad, b + pad) for a, b in spans], segs, sentence)
                )
        on_a, off_a = np.array(on), np.array(off)
        summary[engine] = {
            "sentences": n_per_engine,
            "not_aligned_or_no_engine_times": failed,
            "words": len(on_a),
            **{
                f"{name}_{stat}": value
                for name, d in (("onset", on_a), ("offset", off_a))
                if len(d)
                for stat, value in (
                    ("median_s", round(float(np.median(d)), 4)),
                    ("median_abs_s", round(float(np.median(np.abs(d))), 4)),
                    ("p90_abs_s", round(float(np.percentile(np.abs(d), 90)), 4)),
                    ("within_20ms", round(float(np.mean(np.abs(d) <= 0.02)), 3)),
                    ("within_50ms", round(float(np.mean(np.abs(d) <= 0.05)), 3)),
                )
            },
            "energy": timing_summary(checks).get(engine),
        }
    _write_text(out_dir / "timing_check.json", json.dumps(summary, indent=1) + "\n")
    if importlib.util.find_spec("matplotlib") is not None and examples:
        _plot_examples(out_dir / "timing_examples.png", examples)
    return summary


def _plot_examples(
    path: Path, examples: list[tuple[str, np.ndarray, list, list, list[str]]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(examples), 1, figsize=(14, 2.7 * len(examples)))
    for ax, (name, audio, spans, segs, words) in zip(np.atleast_1d(axes), examples, strict=True):
        ax.specgram(audio, NFFT=512, Fs=SAMPLE_RATE, noverlap=384, cmap="magma", vmin=-140)
        ax.set_ylim(0, 6000)
        for (a, b), w in zip(spans, words, strict=True):
            ax.axvline(a / SAMPLE_RATE, color="cyan", lw=1.5)
            ax.axvline(b / SAMPLE_RATE, color="cyan", ls="--", lw=1.5)
            ax.text(a / SAMPLE_RATE + 0.005, 5500, w, color="white", fontsize=9)
        for sa, sb in segs:
            ax.axvline(sa, color="lime", lw=1, ymax=0.4)
            ax.axvline(sb, color="lime", ls=":", lw=1, ymax=0.4)
        ax.set_title(
            f"{name}: engine word onsets/offsets (cyan solid/dashed), pocketsphinx (green, low)"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summary_lines(manifest: dict[str, Any]) -> list[str]:
    st = manifest["statistics"]
    lines = [f"vocabulary: {st['vocabulary_size']} words"]
    for split in SPLITS:
        s = st[split]
        lines.append(
            f"{split}: {s['files']} files, {s['hours']:.2f} h, {s['word_tokens']} word tokens, "
            f"{s['voices']} voices, engine timing {100 * s['engine_timing_share']:.1f} %"
        )
    lines.append(f"generation time {manifest['generation_time_s']:.0f} s ({manifest['jobs']} jobs)")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/kws_words"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--words", type=int, default=DEFAULT_WORDS, help="vocabulary size")
    parser.add_argument(
        "--tokens-per-word",
        type=int,
        default=DEFAULT_TOKENS_PER_WORD,
        help="how often each word is spoken (by different voices; about 1 in 6 in val)",
    )
    parser.add_argument(
        "--noise",
        choices=("mixed", "generated"),
        default="mixed",
        help="mixed: Debian clips + babble + generated noise; generated: no package needed",
    )
    parser.add_argument(
        "--download", action="store_true", help="apt-get download missing noise packages"
    )
    parser.add_argument("--sources-dir", type=Path, default=DEFAULT_SOURCES, help="package cache")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--check-timing",
        type=int,
        metavar="N",
        default=0,
        help="instead of generating: cross-check the engines' word times on N dry sentences per "
        "engine against pocketsphinx forced alignment (writes timing_check.json and "
        "timing_examples.png to --out)",
    )
    args = parser.parse_args(argv)
    if args.check_timing:
        summary = check_timing(args.out, args.check_timing, args.seed)
        print(json.dumps(summary, indent=1))
        return

    manifest = run_with_progress(
        make_kws_words,
        out_dir=args.out,
        seed=args.seed,
        n_words=args.words,
        tokens_per_word=args.tokens_per_word,
        noise=args.noise,
        download=args.download,
        sources_dir=args.sources_dir,
        jobs=args.jobs,
    )
    print("\n".join(summary_lines(manifest) + [f"written to {args.out}"]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
