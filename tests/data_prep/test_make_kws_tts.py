"""Smoke test of the TTS keyword-spotting benchmark generator on a tiny configuration
(3 keywords, 0.3 minutes per split, generated noise only: no download, no piper)."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.tts import FESTIVAL_VOICE_DIRS, REQUIRED_PROGRAMS
from kwsos.events import read_events

ENGINES_MISSING = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None] + [
    v for v, (folder, _) in FESTIVAL_VOICE_DIRS.items() if not folder.is_dir()
]
pytestmark = pytest.mark.skipif(
    bool(ENGINES_MISSING), reason=f"TTS engines/voices not installed: {ENGINES_MISSING}"
)

TINY = {"seed": 0, "minutes": 0.3, "n_keywords": 3, "noise": "generated", "piper": "no"}
ANNOTATIONS = ("train.csv", "validation.csv", "test.csv", "validation_reference.csv",
               "test_reference.csv", "validation_transcript.csv", "test_transcript.csv")  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny benchmark generated twice with the same seed, in two folders."""
    from data_prep.make_kws_tts import make_kws_tts

    root = tmp_path_factory.mktemp("kws_tts")
    for name in ("a", "b"):
        make_kws_tts(root / name, align="no", jobs=2, **TINY)
    return root / "a", root / "b"


def test_deterministic(tiny: tuple[Path, Path]) -> None:
    a, b = tiny
    for name in ANNOTATIONS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    wavs = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert wavs == sorted(p.relative_to(b) for p in b.rglob("*.wav"))
    assert all((a / w).read_bytes() == (b / w).read_bytes() for w in wavs)


def test_layout_and_labels(tiny: tuple[Path, Path]) -> None:
    out = tiny[0]
    header = "idx,event_label,event_onset,event_offset,file,scene_label"
    for name in ("train.csv", "validation.csv", "test.csv"):
        assert (out / name).read_text().splitlines()[0] == header
    shots = _rows(out / "train.csv")
    assert len(shots) == 3 * 5
    assert {r["event_label"] for r in shots} == {"credit card", "cash", "information"}
    assert (out / "train" / "credit_card" / "5.wav").is_file()
    reference = read_events(out / "test_reference.csv")  # what kwsos evaluate reads
    assert {e.label for e in reference} == {"credit card", "cash", "information"}
    sentences = (out / "test_sentences.csv").read_text().split()
    assert sentences == sorted(p.relative_to(out).as_posix() for p in (out / "test").glob("*.wav"))


def test_voices_disjoint(tiny: tuple[Path, Path]) -> None:
    out = tiny[0]
    train = {r["scene_label"] for r in _rows(out / "train.csv")}
    evaluation = {
        r["scene_label"] for s in ("validation", "test") for r in _rows(out / f"{s}_manifest.csv")
    }
    assert len(train) == 5
    assert len(evaluation) >= 4
    assert train.isdisjoint(evaluation)
    # flite and festival share two speakers: kal only for enrollment, slt only for evaluation
    assert not any("kal" in v for v in evaluation)
    assert not any("slt" in v for v in train)


def test_events_inside_files_and_snr_in_range(tiny: tuple[Path, Path]) -> None:
    out = tiny[0]
    for name in ("train.csv", "validation.csv", "test.csv"):
        for row in _rows(out / name):
            info = sf.info(str(out / row["file"]))
            assert info.samplerate == 16000
            assert 0 <= float(row["event_onset"]) < float(row["event_offset"]) <= info.duration
    for split in ("validation", "test"):
        rows = _rows(out / f"{split}_manifest.csv")
        chunks = _rows(out / f"{split}_transcript.csv")
        assert len(rows) == 4  # round(15 sentences per minute x 0.3)
        for r in rows:
            snr_db = float(r["snr_db"])
            assert 5.0 <= snr_db <= 20.0
            audio, sr = sf.read(str(out / r["file"]), dtype="float32")
            assert np.max(np.abs(audio)) <= 0.91
            # loose check of the mixing: the noise-only lead-in against the speech chunks
            speech = np.concatenate(
                [
                    audio[int(float(c["onset"]) * sr) : int(float(c["offset"]) * sr)]
                    for c in chunks
                    if c["file"] == r["file"]
                ]
            )
            noise_power = np.mean(audio[: int(0.15 * sr)] ** 2)
            speech_power = max(np.mean(speech**2) - noise_power, 1e-12)
            assert 10 * np.log10(speech_power / noise_power) == pytest.approx(snr_db, abs=6)


def test_rerun_is_cached(tiny: tuple[Path, Path]) -> None:
    from data_prep.make_kws_tts import make_kws_tts

    out = tiny[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    start = time.perf_counter()
    make_kws_tts(out, align="no", jobs=2, **TINY)
    assert time.perf_counter() - start < 5
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    from data_prep.make_kws_tts import GenerationError, make_kws_tts

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GenerationError, match="not written by make_kws_tts"):
        make_kws_tts(tmp_path, align="no", **TINY)


def test_prepare_kws_dailytalk_reads_the_tts_benchmark(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    """The TTS output is a valid KWS-DailyTalk annotation set for the DailyTalk preparation."""
    from data_prep.prepare_kws_dailytalk import prepare_kws_dailytalk

    out = tiny[0]
    manifest = prepare_kws_dailytalk(out, out, tmp_path / "prepared")
    assert manifest["train"]["files"] == 15
    assert manifest["test"]["files"] == 4
    for split in ("validation", "test"):
        assert (tmp_path / "prepared" / f"{split}_reference.csv").read_text() == (
            out / f"{split}_reference.csv"
        ).read_text()


def test_regenerates_when_the_marker_is_gone(tiny: tuple[Path, Path]) -> None:
    """Deleting .complete.json forces a fresh generation into the same folder (same result)."""
    from data_prep.make_kws_tts import make_kws_tts

    a, b = tiny
    (b / ".complete.json").unlink()
    (b / "test.csv").write_text("stale")
    make_kws_tts(b, align="no", jobs=2, **TINY)
    assert (b / ".complete.json").is_file()
    assert not (b / ".incomplete").exists()
    for name in ANNOTATIONS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
