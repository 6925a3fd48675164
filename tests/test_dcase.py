"""kwsos.dcase on tiny look-alikes of the real DCASE 2020/2022/2023 Task 2 downloads.

The names, folders and CSVs copy the real ones (see the kwsos.dcase docstring for the sources):
2020 ``dev_data/<m>/{train,test}/{normal,anomaly}_id_XX_NNNNNNNN.wav`` and the anonymised
``eval_data/<m>/test/id_XX_NNNNNNNN.wav`` + ``eval_data_list.csv``; 2022/2023
``section_XX_<domain>_<split>_<label>_NNNN_<attrs>.wav`` + ``attributes_XX.csv`` and the
evaluator's ``ground_truth_{data,domain,attributes}`` folders.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sklearn.metrics import roc_auc_score

from kwsos import dcase
from kwsos.dcase import AsdClip, DcaseDataError
from kwsos.errors import KwsosError
from kwsos.metrics import harmonic_mean


def wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)  # 0.1 s
    return path


def write_rows(path: Path, rows, header=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def make_2020_dev(root: Path) -> Path:
    for machine, ids in (("ToyTrain", ("00", "02")), ("my_pump", ("01",))):
        for mid in ids:
            for n in range(3):
                wav(root / "dev_data" / machine / "train" / f"normal_id_{mid}_{n:08d}.wav")
            for n in range(2):
                wav(root / "dev_data" / machine / "test" / f"normal_id_{mid}_{n:08d}.wav")
                wav(root / "dev_data" / machine / "test" / f"anomaly_id_{mid}_{n:08d}.wav")
    return root


def make_2020_eval(root: Path) -> Path:
    """Additional training data + anonymised test clips + the official eval_data_list.csv."""
    rows = [["my_pump"]]
    for n in range(2):
        wav(root / "eval_data" / "my_pump" / "train" / f"normal_id_03_{n:08d}.wav")
    for n, label in enumerate(["normal", "anomaly", "normal", "anomaly"]):
        wav(root / "eval_data" / "my_pump" / "test" / f"id_03_{n:08d}.wav")
        rows.append([f"id_03_{n:08d}.wav", f"{label}_id_03_{n:08d}.wav", int(label == "anomaly")])
    write_rows(root / "eval_data_list.csv", rows)
    return root


def make_2022_dev(root: Path) -> Path:
    """fan with sections 00-02 under dev_data/ (as the 2022 baseline unpacks it)."""
    m = root / "dev_data" / "fan"
    for sec, val in (("00", "W"), ("01", "X"), ("02", "Y")):
        rows = []
        for split, kinds in (
            ("train", [("source", "normal"), ("target", "normal")]),
            ("test", [("source", "normal"), ("source", "anomaly"), ("target", "normal"), ("target", "anomaly")]),
        ):  # fmt: skip
            for n, (dom, label) in enumerate(kinds):
                name = f"section_{sec}_{dom}_{split}_{label}_{n:04d}_m-n_{val}.wav"
                wav(m / split / name)
                rows.append([f"fan/{split}/{name}", "m-n", val])
        write_rows(m / f"attributes_{sec}.csv", rows, ["file_name", "d1p", "d1v"])
    return root


def make_2023_dev(root: Path) -> Path:
    """ToyTrain and my_pump (one section 00 each) under dev_data/raw/ (2023 baseline)."""
    base = root / "dev_data" / "raw"
    attrs = {"ToyTrain": "car_A1_spd_28V_mic_1", "my_pump": "noAttribute"}
    for machine, a in attrs.items():
        rows = []
        for n in range(3):
            name = f"section_00_source_train_normal_{n:04d}_{a}.wav"
            wav(base / machine / "train" / name)
            rows.append([f"{machine}/train/{name}", "car", "A1", "spd", "28V", "mic", "1"])
        wav(base / machine / "train" / f"section_00_target_train_normal_0000_{a}.wav")
        for dom in ("source", "target"):
            for label in ("normal", "anomaly"):
                for n in range(2):
                    wav(base / machine / "test" / f"section_00_{dom}_test_{label}_{n:04d}_{a}.wav")
        if machine == "ToyTrain":
            header = ["file_name", "d1p", "d1v", "d2p", "d2v", "d3p", "d3v"]
            write_rows(base / machine / "attributes_00.csv", rows, header)
    return root


# anonymised evaluation clips of "bandsaw": (label, domain) of section_00_0000..0007
EVAL_2023 = [
    ("normal", "source"),
    ("anomaly", "target"),
    ("normal", "target"),
    ("anomaly", "source"),
    ("normal", "source"),
    ("anomaly", "target"),
    ("normal", "target"),
    ("anomaly", "source"),
]


def make_2023_eval(root: Path) -> tuple[Path, Path]:
    m = root / "eval_data" / "raw" / "bandsaw"
    for n in range(2):
        wav(m / "train" / f"section_00_source_train_normal_{n:04d}_vel_15.wav")
    gt = root / "evaluator"
    data, domain, attrs = [], [], []
    for n, (label, dom) in enumerate(EVAL_2023):
        name = f"section_00_{n:04d}.wav"
        wav(m / "test" / name)
        data.append([name, int(label == "anomaly")])
        domain.append([name, int(dom == "target")])
        attrs.append([name, f"section_00_{dom}_test_{label}_{n:04d}_vel_1{n % 2}"])
    f = "ground_truth_bandsaw_section_00_test.csv"
    write_rows(gt / "ground_truth_data" / f, data)
    write_rows(gt / "ground_truth_domain" / f, domain)
    write_rows(gt / "ground_truth_attributes" / f, attrs)
    return root, gt


# ---------------------------------------------------------------------------------------------
# layouts and parsing
# ---------------------------------------------------------------------------------------------


def test_2020_dev_layout_and_fields(tmp_path):
    root = make_2020_dev(tmp_path)
    assert dcase.detect_layout(root) == "dcase2020"
    clips = dcase.read_dataset(root)
    assert dcase.machines(clips) == ["ToyTrain", "my_pump"]
    assert dcase.sections(clips, "ToyTrain") == ["00", "02"]
    assert len(clips) == 3 * 7
    c = next(c for c in clips if c.name == "anomaly_id_02_00000001.wav")
    assert c == AsdClip(
        path=root / "dev_data" / "ToyTrain" / "test" / "anomaly_id_02_00000001.wav",
        name="anomaly_id_02_00000001.wav",
        machine="ToyTrain",
        section="02",
        domain="",
        split="test",
        label="anomaly",
        attributes=(),
        subset="dev",
    )
    # the same clips whether the root is the download root, dev_data or one machine folder
    assert dcase.read_dataset(root / "dev_data") == clips
    one = dcase.read_dataset(root / "dev_data" / "my_pump", split="train")
    assert {(c.machine, c.section, c.split) for c in one} == {("my_pump", "01", "train")}


def test_2020_eval_with_ground_truth(tmp_path):
    root = make_2020_eval(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    assert all(c.label is None and c.subset == "eval" and c.section == "03" for c in clips)
    for gt in (root / "eval_data_list.csv", root):  # the file, or the evaluator's folder
        labelled = dcase.read_dataset(root, split="test", ground_truth=gt)
        assert [c.label for c in labelled] == ["normal", "anomaly", "normal", "anomaly"]
        assert [c.name for c in labelled] == [f"id_03_{n:08d}.wav" for n in range(4)]
    assert dcase.read_ground_truth(root / "eval_data_list.csv")[
        ("my_pump", "id_03_00000001.wav")
    ] == ("anomaly", "")


def test_2022_dev_layout_attributes_and_sections(tmp_path):
    root = make_2022_dev(tmp_path)
    assert dcase.detect_layout(root) == "dcase2022"
    clips = dcase.read_dataset(root, split="test")
    assert dcase.sections(clips, "fan") == ["00", "01", "02"]
    c = next(c for c in clips if c.name == "section_01_target_test_anomaly_0003_m-n_X.wav")
    assert (c.machine, c.section, c.domain, c.split, c.label) == (
        "fan",
        "01",
        "target",
        "test",
        "anomaly",
    )
    assert c.attributes == (("m-n", "X"),)
    assert c.subset == "dev"


def test_2023_dev_layout_attributes_and_roots(tmp_path):
    root = make_2023_dev(tmp_path)
    assert dcase.detect_layout(root) == "dcase2023"
    clips = dcase.read_dataset(root)
    assert dcase.machines(clips) == ["ToyTrain", "my_pump"]
    c = next(
        c for c in clips if c.name == "section_00_source_train_normal_0001_car_A1_spd_28V_mic_1.wav"
    )
    assert (c.machine, c.section, c.domain, c.split, c.label) == (
        "ToyTrain",
        "00",
        "source",
        "train",
        "normal",
    )
    assert c.attributes == (("car", "A1"), ("spd", "28V"), ("mic", "1"))
    # not in the attributes CSV: pairs from the file name
    t = next(c for c in clips if c.name.startswith("section_00_target_test_anomaly_0001_car"))
    assert t.attributes == (("car", "A1"), ("spd", "28V"), ("mic", "1"))
    # "noAttribute" means none
    p = next(c for c in clips if c.machine == "my_pump")
    assert p.attributes == ()
    for sub in ("dev_data", "dev_data/raw"):
        assert dcase.read_dataset(root / sub) == clips
    assert dcase.read_dataset(root, machines=["my_pump"]) == [
        c for c in clips if c.machine == "my_pump"
    ]


def test_2022_subset_with_only_section_00_needs_forcing(tmp_path):
    root = make_2022_dev(tmp_path)
    for p in list((root / "dev_data" / "fan").rglob("section_0[12]_*")):
        p.unlink()
    assert dcase.detect_layout(root) == "dcase2023"
    assert dcase.read_dataset(root, layout="dcase2022")  # forcing is allowed
    with pytest.raises(DcaseDataError, match="not a dcase2020 file name"):
        dcase.read_dataset(root, layout="dcase2020")


def test_2023_eval_with_evaluator_ground_truth(tmp_path):
    root, gt = make_2023_eval(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    assert all(c.label is None and c.domain == "" for c in clips)
    clips = dcase.read_dataset(root, split="test", ground_truth=gt)
    assert [(c.label, c.domain) for c in clips] == EVAL_2023
    assert clips[1].attributes == (("vel", "11"),)
    assert dcase.detect_layout(root) == "dcase2023"


# ---------------------------------------------------------------------------------------------
# errors (one line, naming the path)
# ---------------------------------------------------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, KwsosError)
    return msg


def test_errors_on_bad_folders(tmp_path):
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(tmp_path / "nope")
    assert "does not exist" in one_line(e)
    with pytest.raises(DcaseDataError) as e:
        dcase.detect_layout(tmp_path)
    assert "no DCASE Task 2 machine folder" in one_line(e) and str(tmp_path) in one_line(e)
    bad = wav(tmp_path / "dev_data" / "fan" / "train" / "recording_1.wav")
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(tmp_path)
    assert str(bad) in one_line(e) and "not a DCASE" in one_line(e)


def test_error_on_mixed_families(tmp_path):
    root = make_2020_dev(tmp_path)
    wav(root / "dev_data" / "fan" / "train" / "section_00_source_train_normal_0000_a_b.wav")
    with pytest.raises(DcaseDataError, match="mixed"):
        dcase.read_dataset(root)


def test_error_unknown_machine_and_no_training_clips(tmp_path):
    root = make_2023_dev(tmp_path)
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(root, machines=["ToyCar"])
    assert "unknown machine type 'ToyCar'" in one_line(e) and "ToyTrain, my_pump" in one_line(e)
    for p in (root / "dev_data" / "raw" / "my_pump" / "train").iterdir():
        p.unlink()
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(root)
    assert "my_pump" in one_line(e) and "no normal training clip" in one_line(e)
    assert dcase.read_dataset(root, split="test")  # scoring alone needs no training clips


def test_errors_on_ground_truth(tmp_path):
    root, gt = make_2023_eval(tmp_path)
    with pytest.raises(DcaseDataError, match="does not exist"):
        dcase.read_dataset(root, ground_truth=tmp_path / "missing")
    with pytest.raises(DcaseDataError, match="expected ground_truth_data"):
        dcase.read_dataset(root, ground_truth=tmp_path / "eval_data")
    # a test clip the ground truth does not know
    extra = wav(root / "eval_data" / "raw" / "bandsaw" / "test" / "section_00_0100.wav")
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(root, ground_truth=gt)
    assert "no ground truth for test clip bandsaw/section_00_0100.wav" in one_line(e)
    extra.unlink()
    # the ground truth names a clip that is missing
    (root / "eval_data" / "raw" / "bandsaw" / "test" / "section_00_0003.wav").unlink()
    with pytest.raises(DcaseDataError) as e:
        dcase.read_dataset(root, ground_truth=gt)
    assert "section_00_0003.wav" in one_line(e) and "not among the test clips" in one_line(e)


def test_ground_truth_contradicting_a_labelled_name(tmp_path):
    root = make_2020_dev(tmp_path)
    write_rows(
        tmp_path / "gt.csv",
        [["my_pump"], ["normal_id_01_00000000.wav", "normal_id_01_00000000.wav", "1"]],
    )
    with pytest.raises(DcaseDataError, match="labelled"):
        dcase.read_dataset(root, ground_truth=tmp_path / "gt.csv")


# ---------------------------------------------------------------------------------------------
# submission files
# ---------------------------------------------------------------------------------------------


def test_submission_round_trip_2023(tmp_path):
    root = make_2023_dev(tmp_path / "data")
    clips = dcase.read_dataset(root, split="test")
    scores = np.linspace(-1.5, 2.25, len(clips))
    decisions = (scores > 0.5).astype(int)
    out = tmp_path / "sub"
    written = dcase.write_submission(out, clips, scores, decisions, layout="dcase2023")
    assert [p.name for p in written] == [
        "anomaly_score_ToyTrain_section_00_test.csv",
        "anomaly_score_my_pump_section_00_test.csv",
        "decision_result_ToyTrain_section_00_test.csv",
        "decision_result_my_pump_section_00_test.csv",
    ]
    lines = (out / "anomaly_score_my_pump_section_00_test.csv").read_text().splitlines()
    mine = sorted((c.name, s) for c, s in zip(clips, scores, strict=True) if c.machine == "my_pump")
    assert lines == [f"{n},{float(s)!r}" for n, s in mine]
    dl = (out / "decision_result_my_pump_section_00_test.csv").read_text().splitlines()
    assert dl[0] == f"{mine[0][0]},{int(mine[0][1] > 0.5)}"
    sub = dcase.read_submission(out)
    assert sub.layout_family == "dcase2022/2023"
    assert sub.scores[("my_pump", "00")] == mine
    s2, d2 = dcase.scores_for_clips(sub, clips)
    np.testing.assert_array_equal(s2, scores)
    np.testing.assert_array_equal(d2, decisions)


def test_submission_2020_has_no_decision_files(tmp_path):
    root = make_2020_dev(tmp_path / "data")
    clips = dcase.read_dataset(root, split="test")
    scores = np.arange(len(clips), dtype=float)
    written = dcase.write_submission(tmp_path / "s", clips, scores, layout="dcase2020")
    assert [p.name for p in written] == [
        "anomaly_score_ToyTrain_id_00.csv",
        "anomaly_score_ToyTrain_id_02.csv",
        "anomaly_score_my_pump_id_01.csv",
    ]
    sub = dcase.read_submission(tmp_path / "s")
    assert sub.layout_family == "dcase2020" and not sub.decisions
    s2, d2 = dcase.scores_for_clips(sub, clips)
    np.testing.assert_array_equal(s2, scores)
    assert d2 is None


def test_submission_errors(tmp_path):
    root = make_2023_dev(tmp_path / "data")
    clips = dcase.read_dataset(root, split="test")
    scores = np.zeros(len(clips))
    with pytest.raises(ValueError, match="need decisions"):
        dcase.write_submission(tmp_path / "s", clips, scores, layout="dcase2023")
    with pytest.raises(ValueError, match="shape"):
        dcase.write_submission(tmp_path / "s", clips, scores[:-1], scores, layout="dcase2023")
    with pytest.raises(DcaseDataError, match="does not exist"):
        dcase.read_submission(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DcaseDataError, match="no anomaly_score"):
        dcase.read_submission(tmp_path / "empty")
    dcase.write_submission(tmp_path / "s", clips, scores, scores.astype(int), layout="dcase2023")
    f = tmp_path / "s" / "anomaly_score_ToyTrain_section_00_test.csv"
    f.write_text("\n".join(f.read_text().splitlines()[1:]) + "\n")  # drop one clip
    with pytest.raises(DcaseDataError, match="no score for"):
        dcase.scores_for_clips(dcase.read_submission(tmp_path / "s"), clips)
    f.write_text("x.wav,abc\n")
    with pytest.raises(DcaseDataError, match="not a number"):
        dcase.read_submission(tmp_path / "s")


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def _reference_2023(clips, scores):
    """Straight sklearn per machine, the official domain rule, and one hmean."""
    vals = {}
    for m in dcase.machines(clips):
        idx = [i for i, c in enumerate(clips) if c.machine == m]
        y = np.array([clips[i].label == "anomaly" for i in idx])
        t = np.array([clips[i].domain == "target" for i in idx])
        s = scores[idx]
        vals[m] = (
            roc_auc_score(y[~t | y], s[~t | y]),
            roc_auc_score(y[t | y], s[t | y]),
            roc_auc_score(y, s, max_fpr=0.1),
        )
    flat = [v[k] for k in range(3) for v in vals.values()]
    return vals, len(flat) / sum(1 / v for v in flat)


def test_evaluate_2023_dev_against_sklearn(tmp_path, rng):
    root = make_2023_dev(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    y = np.array([c.label == "anomaly" for c in clips])
    scores = rng.normal(size=len(clips)) + 0.8 * y
    decisions = (scores > 0.4).astype(int)
    report = dcase.evaluate(clips, scores, decisions, layout="dcase2023")
    vals, official = _reference_2023(clips, scores)
    assert [(r.machine, r.section) for r in report.rows] == [("ToyTrain", "00"), ("my_pump", "00")]
    for r in report.rows:
        assert (r.scores.auc_source, r.scores.auc_target, r.scores.pauc) == pytest.approx(
            vals[r.machine]
        )
    assert report.summary["official_score"] == pytest.approx(official)
    assert report.per_machine["my_pump"]["score"] == pytest.approx(
        3 / sum(1 / v for v in vals["my_pump"])
    )
    assert report.has_decisions and "hmean_f1" in report.summary
    d = report.to_dict()
    assert d["layout"] == "dcase2023" and len(d["rows"]) == 2
    text = report.format_table()
    assert "ToyTrain" in text and "my_pump" in text and "official score" in text
    assert f"{100 * official:6.2f}" in text


def test_evaluate_2022_result_csv_layout(tmp_path, rng):
    root = make_2022_dev(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    y = np.array([c.label == "anomaly" for c in clips])
    scores = rng.normal(size=len(clips)) + y
    report = dcase.evaluate(clips, scores, (scores > 0.5).astype(int), layout="dcase2022")
    out = tmp_path / "result.csv"
    report.to_csv(out)
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["fan"]
    assert rows[1][:5] == ["section", "AUC (all)", "AUC (source)", "AUC (target)", "pAUC"]
    assert [r[0] for r in rows[2:5]] == ["00", "01", "02"]
    assert rows[5] == ["", "", "AUC", "pAUC", "precision", "recall", "F1 score"]
    assert rows[-1][0] == "official score"
    assert float(rows[-1][2]) == pytest.approx(report.summary["official_score"])
    # per-machine "harmonic mean" row: AUC over 3 sources + 3 targets
    hm = next(r for r in rows if r and r[0] == "harmonic mean")
    aucs = [r.scores.auc_source for r in report.rows] + [r.scores.auc_target for r in report.rows]
    assert float(hm[2]) == pytest.approx(harmonic_mean(aucs))


def test_evaluate_2020_means(tmp_path):
    root = make_2020_dev(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    y = np.array([c.label == "anomaly" for c in clips])
    idx = np.arange(len(clips))
    scores = np.where(y, 1.0, 0.0) + np.where(idx % 3 == 0, 1.5, 0.0)  # some misses
    report = dcase.evaluate(clips, scores, layout="dcase2020")
    assert [(r.machine, r.section) for r in report.rows] == [
        ("ToyTrain", "00"),
        ("ToyTrain", "02"),
        ("my_pump", "01"),
    ]
    ref = {}
    for r in report.rows:
        sel = [i for i, c in enumerate(clips) if (c.machine, c.section) == (r.machine, r.section)]
        ref[(r.machine, r.section)] = roc_auc_score(y[sel], scores[sel])
        assert r.scores.auc == pytest.approx(ref[(r.machine, r.section)])
        assert math.isnan(r.scores.auc_source)
    toy = (ref[("ToyTrain", "00")] + ref[("ToyTrain", "02")]) / 2
    assert report.per_machine["ToyTrain"]["amean_auc"] == pytest.approx(toy)
    assert report.summary["amean_auc"] == pytest.approx(np.mean(list(ref.values())))
    assert report.summary["amean_auc_types"] == pytest.approx((toy + ref[("my_pump", "01")]) / 2)
    report.to_csv(tmp_path / "r.csv")
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert rows[:2] == [["ToyTrain"], ["id", "AUC", "pAUC"]]
    assert rows[4][0] == "Average" and float(rows[4][1]) == pytest.approx(toy)
    d = report.to_dict()
    assert d["rows"][0]["auc_source"] is None  # no domains in 2020: JSON null, not NaN
    json.loads(json.dumps(d, allow_nan=False))
    assert "my_pump" in report.format_table()


def test_evaluate_submission_on_2023_eval(tmp_path):
    root, gt = make_2023_eval(tmp_path)
    clips = dcase.read_dataset(root, split="test", ground_truth=gt)
    # perfect on source, target normals score above the source anomalies
    scores = np.array([0.0, 0.9, 0.6, 0.5, 0.1, 0.95, 0.7, 0.55])
    dcase.write_submission(
        tmp_path / "s", clips, scores, (scores > 0.8).astype(int), layout="dcase2023"
    )
    report = dcase.evaluate_submission(tmp_path / "s", clips)
    assert report.layout == "dcase2023"
    r = report.rows[0].scores
    assert r.auc_source == 1.0
    # target normals {0.6, 0.7} vs all anomalies {0.9, 0.5, 0.95, 0.55}: 4 of 8 pairs
    assert r.auc_target == pytest.approx(0.5)
    # decisions in target: y = [1, 0, 1, 0], dec = [1, 0, 1, 0]
    assert (r.precision_target, r.recall_target, r.f1_target) == (1.0, 1.0, 1.0)
    # source: y = [0, 1, 0, 1], nothing above 0.8 -> all zero
    assert (r.precision_source, r.recall_source, r.f1_source) == (0.0, 0.0, 0.0)


def test_evaluate_errors(tmp_path):
    root, _ = make_2023_eval(tmp_path)
    clips = dcase.read_dataset(root, split="test")
    with pytest.raises(DcaseDataError, match="label unknown"):
        dcase.evaluate(clips, np.zeros(len(clips)), layout="dcase2023")
    root2 = make_2023_dev(tmp_path / "d")
    clips = [c for c in dcase.read_dataset(root2, split="test") if c.label == "normal"]
    with pytest.raises(DcaseDataError, match="ToyTrain section 00"):
        dcase.evaluate(clips, np.zeros(len(clips)), layout="dcase2023")


def test_2022_eval_with_evaluator_ground_truth_and_eval_data_list(tmp_path):
    """2022 evaluator: ground_truth_attributes/<machine>/attributes_XX.csv with a
    file_name_with_full_attributes column; 2023 baseline's 2-column eval_data_list copy."""
    m = tmp_path / "eval_data" / "fan"
    wav(m / "train" / "section_03_source_train_normal_0000_m-n_W.wav")
    truth = [("normal", "source", "W"), ("anomaly", "target", "Y"), ("anomaly", "source", "W"),
             ("normal", "target", "Y")]  # fmt: skip
    gt = tmp_path / "evaluator"
    f = "ground_truth_fan_section_03_test.csv"
    data, dom, attrs, listed = [], [], [], [["fan"]]
    for n, (label, domain, val) in enumerate(truth):
        name = f"section_03_{n:04d}.wav"
        full = f"section_03_{domain}_test_{label}_{n:04d}_m-n_{val}.wav"
        wav(m / "test" / name)
        data.append([name, int(label == "anomaly")])
        dom.append([name, int(domain == "target")])
        attrs.append([f"fan/test/{name}", "m-n", val, f"fan/test/{full}"])
        listed.append([name, full])
    write_rows(gt / "ground_truth_data" / f, data)
    write_rows(gt / "ground_truth_domain" / f, dom)
    write_rows(
        gt / "ground_truth_attributes" / "fan" / "attributes_03.csv",
        attrs,
        ["file_name", "d1p", "d1v", "file_name_with_full_attributes"],
    )
    write_rows(tmp_path / "eval_data_list_2022.csv", listed)
    assert dcase.detect_layout(tmp_path) == "dcase2022"
    for source in (gt, tmp_path / "eval_data_list_2022.csv"):
        clips = dcase.read_dataset(tmp_path, split="test", ground_truth=source)
        assert [(c.label, c.domain, c.attributes) for c in clips] == [
            (lab, d, (("m-n", v),)) for lab, d, v in truth
        ]
    # without decisions: the report still works, F1 columns stay empty
    report = dcase.evaluate(clips, np.array([0.1, 0.9, 0.8, 0.2]), layout="dcase2022")
    assert not report.has_decisions and "hmean_f1" not in report.summary
    assert report.summary["official_score"] == pytest.approx(1.0)
    report.to_csv(tmp_path / "r.csv")
    row = next(r for r in csv.reader((tmp_path / "r.csv").open()) if r and r[0] == "03")
    assert row[1:5] == ["1.0", "1.0", "1.0", "1.0"] and row[5:] == [""] * 6
    assert "F1" not in report.format_table()
