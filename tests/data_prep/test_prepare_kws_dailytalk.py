"""prepare_kws_dailytalk on a committed look-alike of the KWS-DailyTalk CSVs (Windows paths,
a label with a space, sentence lists with keyword-free sentences) and generated WAVs."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.prepare_kws_dailytalk import (
    DailyTalkError,
    main,
    prepare_kws_dailytalk,
    read_annotations,
)
from kwsos.events import read_events

FIXTURE = Path(__file__).parent / "fixtures" / "kws_dailytalk"
SR = 22050
DURATION_S = 2.5


def _stems() -> set[str]:
    stems = set()
    for path in FIXTURE.glob("*.csv"):
        stems |= set(re.findall(r"\\(\d+_\d+_d\d+)\.(?:wav|txt)", path.read_text()))
    return stems


def _write_dailytalk(root: Path, *, flat: bool = False) -> Path:
    """DailyTalk look-alike: ``root/dailytalk/data/<dialog>/<stem>.wav`` (or ``root/wavs/``)."""
    rng = np.random.default_rng(0)
    for stem in sorted(_stems()):
        dialog = stem.rsplit("_d", 1)[1]
        path = (
            root / "wavs" / f"{stem}.wav"
            if flat
            else root / "dailytalk" / "data" / dialog / f"{stem}.wav"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(int(DURATION_S * SR)), SR, subtype="PCM_16")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def dailytalk(tmp_path: Path) -> Path:
    return _write_dailytalk(tmp_path / "audio")


def test_fixture_has_windows_paths_and_a_label_with_a_space() -> None:
    rows = read_annotations(FIXTURE / "kws_dailytalk_validation.csv")
    assert rows[0].file.startswith(".\\dailytalk\\data\\")
    assert rows[0].label == "credit card"


def test_manifests_and_references(dailytalk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = prepare_kws_dailytalk(FIXTURE, dailytalk, out)

    shots = _rows(out / "train_manifest.csv")
    assert [(r["event_label"], r["shot"], r["file"]) for r in shots] == [
        ("credit card", "1", "train/credit_card/1.wav"),
        ("cash", "1", "train/cash/1.wav"),
        ("credit card", "2", "train/credit_card/2.wav"),
        ("cash", "2", "train/cash/2.wav"),
    ]
    first = sf.info(str(out / "train/credit_card/1.wav"))
    assert first.samplerate == SR
    assert first.duration == pytest.approx(0.6, abs=1e-3)  # 0.5-1.1 s cut from its sentence
    assert shots[0]["source"].endswith("9_1_d1427.wav")
    assert manifest["train"]["counts"] == {"cash": 2, "credit card": 2}

    reference = _rows(out / "validation_reference.csv")
    assert reference == [
        {"filename": "validation/3_1_d1.wav", "onset": "0.260", "offset": "0.770", "event_label": "cash"},
        {"filename": "validation/4_1_d1039.wav", "onset": "0.600", "offset": "1.200", "event_label": "credit card"},
        {"filename": "validation/4_1_d1039.wav", "onset": "1.450", "offset": "1.800", "event_label": "cash"},
    ]  # fmt: skip
    events = read_events(out / "validation_reference.csv")  # what kwsos evaluate reads
    assert [e.label for e in events] == ["cash", "credit card", "cash"]

    recordings = _rows(out / "validation_manifest.csv")
    assert [(r["file"], r["n_events"]) for r in recordings] == [
        ("validation/0_0_d2032.wav", "0"),  # from the sentence list: no keyword
        ("validation/3_1_d1.wav", "1"),
        ("validation/4_1_d1039.wav", "2"),
    ]
    assert all((out / r["file"]).is_symlink() for r in recordings)
    assert sf.info(str(out / "validation/4_1_d1039.wav")).duration == pytest.approx(DURATION_S)
    assert manifest["validation"]["files_without_keywords"] == 1
    assert manifest["test"]["files"] == 3
    assert manifest["test"]["counts"] == {"cash": 1, "credit card": 1}
    assert _rows(out / "test_reference.csv")[1]["filename"] == "test/6_0_d2459.wav"


@pytest.mark.parametrize("layout", ["dailytalk-dir", "data-dir", "elsewhere"])
def test_tolerant_path_resolution(layout: str, tmp_path: Path) -> None:
    if layout == "elsewhere":  # found by file name below the audio folder
        audio = _write_dailytalk(tmp_path / "flat", flat=True)
        rule = "file name"
    else:
        root = _write_dailytalk(tmp_path / "audio")
        audio = root / "dailytalk" if layout == "dailytalk-dir" else root / "dailytalk" / "data"
        rule = "audio-dir tail"
    manifest = prepare_kws_dailytalk(FIXTURE, audio, tmp_path / "out", copy=True)
    assert manifest["path_resolution"] == {rule: len(_stems())}
    assert not (tmp_path / "out" / "test" / "2_1_d2401.wav").is_symlink()


def test_shot_margin(dailytalk: Path, tmp_path: Path) -> None:
    prepare_kws_dailytalk(FIXTURE, dailytalk, tmp_path / "out", shot_margin_s=0.1)
    row = _rows(tmp_path / "out" / "train_manifest.csv")[0]
    assert (row["onset"], row["offset"], row["duration"]) == ("0.100", "0.700", "0.800")


def test_missing_audio_is_one_clear_error(dailytalk: Path, tmp_path: Path) -> None:
    (dailytalk / "dailytalk" / "data" / "1039" / "4_1_d1039.wav").unlink()
    with pytest.raises(DailyTalkError, match=r"^1 of 10 audio files not found .*4_1_d1039\.wav"):
        prepare_kws_dailytalk(FIXTURE, dailytalk, tmp_path / "out")


def test_wrong_header(dailytalk: Path, tmp_path: Path) -> None:
    annotations = tmp_path / "annotations"
    shutil.copytree(FIXTURE, annotations)
    path = annotations / "kws_dailytalk_test.csv"
    path.write_text(path.read_text().replace("event_onset,event_offset", "onset,offset"))
    with pytest.raises(DailyTalkError, match="kws_dailytalk_test.csv: expected the header idx,"):
        prepare_kws_dailytalk(annotations, dailytalk, tmp_path / "out")


def test_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train_keywords.csv"
    path.write_text(
        "idx,event_label,event_onset,event_offset,file,scene_label\n1,cash,zero,1.0,a.wav,1\n"
    )
    with pytest.raises(DailyTalkError, match=r"train_keywords.csv:2: event_onset/event_offset"):
        read_annotations(path)
    path.write_text("idx,event_label,event_onset,event_offset,file,scene_label\n1,cash,0.5\n")
    with pytest.raises(DailyTalkError, match=r":2: expected 6 fields"):
        read_annotations(path)


def test_cli_user_error_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "--annotations",
                str(FIXTURE),
                "--dailytalk-audio",
                str(empty),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prepare_kws_dailytalk: error: 10 of 10 audio files not found")
    assert "\n" not in err
