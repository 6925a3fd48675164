"""prepare_alarm_osc on a small look-alike of the Naranjo-Alcazar et al. alarm dataset."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.prepare_alarm_osc import (
    find_meta_csvs,
    main,
    parse_setting,
    prepare_alarm_osc,
    read_manifest,
)
from kwsos.metrics import openness

KNOWN = ["01_smoke", "02_bell", "03_phone"]  # folders; targets pattern_01..03
UNWANTED = ["car_horn", "clapping", "cough", "door_slam"]
N_CLIPS = 8
UNSEEN_MIDDLE = ["clapping", "door_slam"]


def make_dataset(root: Path, *, reverse: tuple[int, ...] = (), windows_paths: bool = False) -> Path:
    """Tiny WAVs and the nine meta CSVs, built like the dataset's own split script.

    Per class the clips are cut into folds of K shots; the never-seen unwanted classes get
    the extra fold n_folds + 1. ``reverse`` lists shot counts whose CSVs list the rows in
    reverse order (each CSV must be read on its own); ``windows_paths`` writes backslashes.
    """
    rng = np.random.default_rng(0)
    files: list[tuple[str, str]] = []  # (filename, class folder)
    for sub, classes in (("pattern_sounds", KNOWN), ("unwanted_sounds", UNWANTED)):
        for cls in classes:
            folder = root / "data" / sub / cls
            folder.mkdir(parents=True)
            for i in range(N_CLIPS):
                sf.write(folder / f"{cls}_{i:02d}.wav", 0.1 * rng.standard_normal(160), 16000)
                files.append((f"data/{sub}/{cls}/{cls}_{i:02d}.wav", cls))
    meta = root / "data" / "meta" / "csv"
    meta.mkdir(parents=True)
    for k in (1, 2, 4):
        n_folds = N_CLIPS // k
        for pct, unseen in ((0, []), (50, UNSEEN_MIDDLE), (100, UNWANTED)):
            rows = []
            for name, cls in files:
                i = int(Path(name).stem[-2:])
                target = f"pattern_{KNOWN.index(cls) + 1:02d}" if cls in KNOWN else "unknown"
                fold = n_folds + 1 if cls in unseen else i // k + 1
                rows.append([name.replace("/", "\\") if windows_paths else name, target, fold])
            if k in reverse:
                rows.reverse()
            with (meta / f"few_shot_k_{k}_openness_{pct}.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["filename", "target", "fold", "trio_index"])
                w.writerows(r + [0] for r in rows)
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "fsl_osr", reverse=(4,))


def test_setting_names():
    assert parse_setting(Path("few_shot_k_2_openness_50.csv")) == (2, 50)
    assert parse_setting(Path("4shot_opennesshigh.csv")) == (4, 100)
    assert parse_setting(Path("1shot_openness_low.csv")) == (1, 0)
    assert parse_setting(Path("labels.csv")) is None


def test_all_settings_and_folds(dataset: Path, tmp_path: Path):
    assert len(find_meta_csvs(dataset)) == 9
    index = read_manifest(prepare_alarm_osc(dataset, tmp_path / "out"))
    settings = {r["setting"] for r in index}
    assert settings == {f"{k}shot_{lv}" for k in (1, 2, 4) for lv in ("low", "middle", "high")}
    n_folds = {k: sum(r["setting"] == f"{k}shot_low" for r in index) for k in (1, 2, 4)}
    assert n_folds == {1: 8, 2: 4, 4: 2}
    n_all = (len(KNOWN) + len(UNWANTED)) * N_CLIPS
    for r in index:
        k = int(r["shots"])
        seen = {"low": 4, "middle": 2, "high": 0}[r["setting"].split("_")[1]]
        assert int(r["n_train"]) == k * (len(KNOWN) + seen)
        assert int(r["n_test"]) == n_all - int(r["n_train"])
        assert (int(r["n_unknown_seen"]), int(r["n_unknown_unseen"])) == (seen, 4 - seen)
        assert float(r["openness"]) == pytest.approx(openness(3 + seen, 7), abs=1e-4)


def test_fold_manifests_labels_and_roles(dataset: Path, tmp_path: Path):
    index = read_manifest(prepare_alarm_osc(dataset, tmp_path / "out"))
    row = next(r for r in index if r["setting"] == "2shot_middle" and r["fold"] == "3")
    train, test = read_manifest(row["train"]), read_manifest(row["test"])
    assert {r["fold"] for r in train} == {"3"}
    # 2 shots of each known class and of each unwanted class seen in training
    counts = {}
    for r in train:
        counts[r["class"]] = counts.get(r["class"], 0) + 1
    assert counts == {"01_smoke": 2, "02_bell": 2, "03_phone": 2, "car_horn": 2, "cough": 2}
    assert {r["label"] for r in train} == {"pattern_01", "pattern_02", "pattern_03", "unknown"}
    assert not {r["path"] for r in train} & {r["path"] for r in test}
    roles = {(r["class"], r["role"]) for r in test}
    assert ("clapping", "unknown_unseen") in roles and ("cough", "unknown_seen") in roles
    assert ("02_bell", "known") in roles
    for r in train + test:
        assert Path(r["path"]).is_absolute() and Path(r["path"]).is_file()


def test_every_unknown_clip_is_unknown_whatever_the_fold(dataset: Path, tmp_path: Path):
    """The reference code relabels fold 41 only; with 2 and 4 shots the unseen fold is 5 / 3 here."""
    index = read_manifest(prepare_alarm_osc(dataset, tmp_path / "out"))
    for r in index:
        for clip in read_manifest(r["test"]) + read_manifest(r["train"]):
            is_unwanted = clip["class"] in UNWANTED
            assert (clip["label"] == "unknown") == is_unwanted
            if not is_unwanted:
                assert clip["label"] == f"pattern_{KNOWN.index(clip['class']) + 1:02d}"
            # each row belongs to its own file: the label follows the path (no shared cache)
            assert Path(clip["path"]).parent.name == clip["class"]


def test_windows_paths_and_explicit_settings(tmp_path: Path):
    root = make_dataset(tmp_path / "win", windows_paths=True)
    index = read_manifest(prepare_alarm_osc(root, tmp_path / "out", settings=["4shot_high"]))
    assert {r["setting"] for r in index} == {"4shot_high"} and len(index) == 2
    assert all(Path(c["path"]).is_file() for c in read_manifest(index[0]["test"]))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_errors(dataset: Path, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown setting"):
        prepare_alarm_osc(dataset, out, settings=["3shot_low"])
    bad = tmp_path / "bad"
    bad.mkdir()
    p = write_csv(bad / "few_shot_k_1_openness_0.csv", [["file", "target", "fold"]])
    with pytest.raises(ValueError, match="missing column"):
        prepare_alarm_osc(dataset, out, meta_csvs=[p])
    p = write_csv(
        bad / "few_shot_k_1_openness_0.csv",
        [["filename", "target", "fold"], ["data/nope.wav", "pattern_01", "1"]],
    )
    with pytest.raises(ValueError, match="not found"):
        prepare_alarm_osc(dataset, out, meta_csvs=[p])
    name = "data/pattern_sounds/01_smoke/01_smoke_00.wav"
    p = write_csv(
        bad / "few_shot_k_2_openness_0.csv",
        [["filename", "target", "fold"], [name, "pattern_01", "1"]],
    )
    with pytest.raises(ValueError, match="expected 2"):
        prepare_alarm_osc(dataset, out, meta_csvs=[p])
    p = write_csv(
        bad / "few_shot_k_1_openness_0.csv",
        [["filename", "target", "fold"], [name, "pattern_01", "x"]],
    )
    with pytest.raises(ValueError, match="not a number"):
        prepare_alarm_osc(dataset, out, meta_csvs=[p])
    with pytest.raises(ValueError, match="no meta CSV"):
        prepare_alarm_osc(bad.parent / "fsl_osr" / "data" / "pattern_sounds", out)


def test_cli(dataset: Path, tmp_path: Path, capsys):
    assert main([str(dataset), "--out", str(tmp_path / "cli"), "--setting", "1shot_low"]) == 0
    assert "1shot_low" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "cli")])
    assert err.value.code == 2
