"""Tests of the word-corpus generator for pretraining keyword embeddings
(data_prep/make_kws_words.py): the word exclusions, the voice disjointness, the refusal of
reserved / benchmark sound packages, and a tiny generation (skipped without the TTS engines)."""

from __future__ import annotations

import csv
import ctypes.util
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import make_kws_words as mkw
from data_prep.alarm_common import RESERVED_PACKAGES
from data_prep.kws_tts_texts import KEYWORDS as KWS_TTS_KEYWORDS
from data_prep.make_demo import CONFUSABLE_SENTENCES, LONG_VOICES, SHOT_VOICES
from data_prep.make_demo import KEYWORDS as DEMO_KEYWORDS
from data_prep.make_kws_tts import DEBIAN_NOISES, EVAL_VOICES, PIPER_VOICE
from data_prep.tts import Voice

# ----------------------------------------------------------------------------------------------
# Word exclusions


def _all_benchmark_words() -> set[str]:
    words = {w for _, spoken in DEMO_KEYWORDS for w in spoken.split()}
    words |= {w.lower() for kw in KWS_TTS_KEYWORDS for w in kw.label.split()}
    words |= {w.lower() for kw in KWS_TTS_KEYWORDS for n in kw.near for w in n.word.split()}
    words |= {"deposit", "whether", "feather", "leather", "commuter", "bandana", "compute"}
    return words


def _related(word: str, excluded: str) -> bool:
    return (
        word == excluded or word in mkw.inflections(excluded) or excluded in mkw.inflections(word)
    )


def test_excluded_words_cover_every_benchmark_word() -> None:
    excluded = mkw.excluded_words()
    assert _all_benchmark_words() <= set(excluded)
    # multi-word keywords and near-words are excluded word by word
    for word in ("good", "morning", "credit", "card", "bank", "account", "you", "on"):
        assert word in excluded
    # KWS-DailyTalk's keywords: KWS-TTS's with deposit instead of bank account
    assert set(mkw.DAILYTALK_KEYWORDS) == {
        *(k.label for k in KWS_TTS_KEYWORDS if k.label != "bank account"),
        "deposit",
    }
    # every demo near-word is in one of the demo's confusable sentences
    for word in mkw.DEMO_NEAR_WORDS:
        assert any(word in s.lower() for s in CONFUSABLE_SENTENCES), word


def test_exclusion_reason_catches_inflections_both_ways_and_compounds() -> None:
    for word in mkw.excluded_words():
        assert mkw.exclusion_reason(word) is not None, word
        for form in mkw.inflections(word) if word.isalpha() else ():  # not "how's"
            assert mkw.exclusion_reason(form) is not None, (word, form)
    for word in ("houses", "dollar", "nights", "leave", "leaves", "mornings", "goods",
                 "cashier", "tonight", "household", "banking", "deposits", "catching",
                 "computers", "visas", "expensively"):  # fmt: skip
        assert mkw.exclusion_reason(word) is not None, word
    for word in ("table", "river", "people", "yellow", "garden", "car", "wind"):
        assert mkw.exclusion_reason(word) is None, word


def test_inflections_and_stems() -> None:
    assert {"stops", "stopped", "stopping"} <= mkw.inflections("stop")
    assert {"cities", "citied"} <= mkw.inflections("city")
    assert {"leaves", "leaved", "leaving"} <= mkw.inflections("leave")
    assert "stop" in mkw.stems("stopped")
    assert "leave" in mkw.stems("leaving")
    assert "city" in mkw.stems("cities")
    assert "dollar" in mkw.stems("dollars")


def test_selected_vocabulary_never_equals_or_inflects_an_excluded_word() -> None:
    excluded = set(mkw.excluded_words())
    candidates = ["the", "houses", "table", "nights", "river", "cashing", "leave", "card",
                  "yellow", "mornings", "garden", "goods", "tonight", "window", "crashed"]  # fmt: skip
    words, extra, dropped = mkw.select_vocabulary(candidates, 5, 1)
    assert words == ["the", "table", "river", "yellow", "garden"]
    assert extra == ["window"]
    assert {"houses", "nights", "cashing", "leave", "card", "mornings", "goods", "tonight"} <= set(
        dropped
    )
    assert not any(_related(w, e) for w in words + extra for e in excluded)


@pytest.mark.skipif(importlib.util.find_spec("wordfreq") is None, reason="wordfreq not installed")
def test_default_vocabulary_is_clean() -> None:
    candidates = mkw.candidate_words(mkw.wordfreq_ranked(), mkw.cmu_lexicon())
    words, extra, _ = mkw.select_vocabulary(candidates, mkw.DEFAULT_WORDS, mkw.N_BABBLE_WORDS)
    assert len(words) == mkw.DEFAULT_WORDS and len(set(words)) == len(words)
    excluded = set(mkw.excluded_words())
    bad = [(w, e) for w in words + extra for e in excluded if _related(w, e)]
    assert not bad
    assert all(w.isalpha() and w.islower() and len(w) >= 2 for w in words)
    for kw in mkw.keyword_words():
        if len(kw) >= mkw.MIN_SUBSTRING_KEYWORD:
            assert not [w for w in words + extra if kw in w], kw


def test_candidate_words_filter() -> None:
    lexicon = frozenset({"table", "uk", "tv", "the", "ok", "rhythm"})
    ranked = ["The", "table", "uk", "tv", "it's", "the", "2020", "ok", "rhythm", "zzz"]
    assert mkw.candidate_words(ranked, lexicon) == ["the", "table", "rhythm"]
    assert mkw.candidate_words(ranked, None) == ["the", "table", "rhythm"]


# ----------------------------------------------------------------------------------------------
# Voices


def test_no_voice_in_common_with_the_benchmarks_evaluation_voices() -> None:
    corpus = (*mkw.TRAIN_VOICES, *mkw.VAL_VOICES)
    benchmark = (*LONG_VOICES, *EVAL_VOICES, PIPER_VOICE)
    bench_pairs = {(v.engine, v.voice_id.split("+")[0]) for v in benchmark}
    corpus_pairs = {(v.engine, v.voice_id.split("+")[0]) for v in corpus}
    assert not bench_pairs & corpus_pairs
    assert not {v.name for v in benchmark} & {v.name for v in corpus}
    for v in corpus:
        assert (v.engine, v.voice_id.split("+")[0]) not in {
            ("espeak-ng", "en-us"),
            ("espeak-ng", "en-gb-scotland"),
            ("festival", "ked_diphone"),
            ("festival", "cmu_us_slt_arctic_hts"),
            ("flite", "slt"),
            ("piper", "en_US-joe-medium"),
        }
        # the variants of the evaluation voices are not used with any accent either
        assert not v.voice_id.endswith(("+m2", "+f4")), v.name
    assert not {mkw.speaker(v) for v in benchmark} & {mkw.speaker(v) for v in corpus}
    mkw.check_voices()  # the module's own check agrees


def test_check_voices_refuses_an_evaluation_voice() -> None:
    for bad in (
        Voice("x", "espeak-ng", "en-us+m1"),
        Voice("x", "espeak-ng", "en-gb-scotland"),
        Voice("x", "flite", "slt"),
        Voice("x", "festival", "ked_diphone"),
    ):
        with pytest.raises(ValueError):
            mkw.check_voices(train=(*mkw.TRAIN_VOICES, bad))


def test_val_voices_are_unseen_in_train() -> None:
    train = {mkw.base_voice(v) for v in mkw.TRAIN_VOICES}
    val = {mkw.base_voice(v) for v in mkw.VAL_VOICES}
    assert not train & val
    assert not {mkw.speaker(v) for v in mkw.TRAIN_VOICES} & {mkw.speaker(v) for v in mkw.VAL_VOICES}
    train_variants = {
        v.voice_id.partition("+")[2] for v in mkw.TRAIN_VOICES if v.engine == "espeak-ng"
    }
    val_variants = {v.voice_id.partition("+")[2] for v in mkw.VAL_VOICES if v.engine == "espeak-ng"}
    assert not train_variants & val_variants
    with pytest.raises(ValueError, match="both"):
        mkw.check_voices(val=(*mkw.VAL_VOICES, mkw.TRAIN_VOICES[0]))
    # the benchmark enrollment voices are allowed (they are heard at test time anyway)
    assert len({v.name for v in SHOT_VOICES}) == 5


# ----------------------------------------------------------------------------------------------
# Sound packages


@pytest.mark.parametrize(
    "package",
    [p.replace("*", "en") for p in RESERVED_PACKAGES]
    + ["flightgear-data-base", "asterisk-core-sounds-en-gsm", "hedgewars-data"],
)
def test_reserved_packages_are_refused(package: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        mkw.check_noise_package(package)


def test_benchmark_sound_packages_are_refused() -> None:
    for package in {c.package for c in DEBIAN_NOISES} | {"openttd-opensfx", "torcs-data"}:
        with pytest.raises(ValueError, match="benchmark"):
            mkw.check_noise_package(package)
    for clip in mkw.NOISE_CLIPS:
        mkw.check_noise_package(clip.package)  # ours pass


def test_our_noise_packages_are_used_nowhere_else() -> None:
    ours = {c.package for c in mkw.NOISE_CLIPS}
    here = Path(mkw.__file__)
    for source in here.parent.glob("*.py"):
        if source != here:
            text = source.read_text(encoding="utf-8")
            assert not [p for p in ours if p in text], source.name


def test_fetch_refuses_a_reserved_package_before_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import data_prep.alarm_common as common

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("apt-get must not run for a reserved package")

    monkeypatch.setattr(common, "download_deb", no_download)
    clip = mkw.NoiseClip("babble", "hedgewars-data", "usr/share/games/hedgewars/x.ogg")
    monkeypatch.setattr(mkw, "NOISE_CLIPS", (clip,))
    with pytest.raises(ValueError, match="reserved"):
        mkw.fetch_noises(tmp_path / "noise", tmp_path / "cache", download=True)


# ----------------------------------------------------------------------------------------------
# Planning


def test_sentences_keep_every_token_without_repeats() -> None:
    rng = np.random.default_rng(0)
    tokens = [w for w in ("a1", "b2", "c3", "d4", "e5", "f6", "g7") for _ in range(5)]
    sentences = mkw.make_sentences(tokens, rng)
    assert sorted(w for s in sentences for w in s) == sorted(tokens)
    assert all(3 <= len(s) <= 7 and len(set(s)) == len(s) for s in sentences)
    split = mkw.split_tokens(["x", "y"], 6)
    assert len(split["train"]) == 10 and len(split["val"]) == 2


# ----------------------------------------------------------------------------------------------
# A tiny generation (needs espeak-ng, flite and festival with their libraries)

ENGINES_MISSING = [p for p in ("espeak-ng", "flite", "festival") if shutil.which(p) is None] + [
    lib for lib in ("espeak-ng", "flite") if ctypes.util.find_library(lib) is None
]
needs_engines = pytest.mark.skipif(
    bool(ENGINES_MISSING), reason=f"TTS engines not installed: {ENGINES_MISSING}"
)
TINY_WORDS = ["table", "river", "yellow", "garden", "window", "simple"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kws_words")
    for name in ("a", "b"):
        mkw.make_kws_words(
            root / name,
            seed=3,
            n_words=len(TINY_WORDS),
            tokens_per_word=2,
            noise="generated",
            jobs=2,
            vocabulary=TINY_WORDS,
        )
    return root / "a", root / "b"


@needs_engines
def test_tiny_layout_and_times(tiny: tuple[Path, Path]) -> None:
    out = tiny[0]
    for name in ("words.csv", "utterances.csv", "manifest.json", ".complete.json"):
        assert (out / name).is_file(), name
    words = _rows(out / "words.csv")
    utterances = _rows(out / "utterances.csv")
    assert list(words[0]) == ["file", "word", "onset", "offset", "voice", "split", "timing"]
    assert sorted(r["word"] for r in words) == sorted(TINY_WORDS * 2)
    assert {r["split"] for r in utterances} == {"train", "val"}
    assert {r["file"] for r in words} == {r["file"] for r in utterances}
    for u in utterances:
        info = sf.info(out / u["file"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert u["file"].startswith(f"audio/{u['split']}/")
        assert 3 <= int(u["n_words"]) <= 7 or len(utterances) < 4
        assert u["timing"] in ("engine", "chunks")
        file_words = [r for r in words if r["file"] == u["file"]]
        ends = [(float(r["onset"]), float(r["offset"])) for r in file_words]
        assert all(0 <= a < b <= info.duration + 1e-3 for a, b in ends)
        assert all(b0 <= a1 + 1e-3 for (_, b0), (a1, _) in zip(ends, ends[1:], strict=False))
    train = {u["voice"] for u in utterances if u["split"] == "train"}
    val = {u["voice"] for u in utterances if u["split"] == "val"}
    assert train and val and not train & val
    assert val <= {v.name for v in mkw.VAL_VOICES}


@needs_engines
def test_tiny_deterministic_and_cached(tiny: tuple[Path, Path]) -> None:
    a, b = tiny
    for name in ("words.csv", "utterances.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    wavs = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert wavs and wavs == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    assert all((a / w).read_bytes() == (b / w).read_bytes() for w in wavs)
    before = (a / ".complete.json").stat().st_mtime_ns
    manifest = mkw.make_kws_words(
        a, seed=3, n_words=len(TINY_WORDS), tokens_per_word=2, noise="generated",
        jobs=2, vocabulary=TINY_WORDS,
    )  # fmt: skip
    assert (a / ".complete.json").stat().st_mtime_ns == before
    assert manifest["statistics"]["vocabulary_size"] == len(TINY_WORDS)


def test_refuses_excluded_words_and_foreign_folders(tmp_path: Path) -> None:
    if ENGINES_MISSING:
        pytest.skip(f"TTS engines not installed: {ENGINES_MISSING}")
    with pytest.raises(SystemExit, match="excluded"):
        mkw.make_kws_words(tmp_path / "x", vocabulary=["table", "houses", "river"], n_words=3)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not written by make_kws_words"):
        mkw.make_kws_words(
            tmp_path / "foreign", vocabulary=TINY_WORDS, n_words=6, noise="generated"
        )
