"""kwsos.io (atomic writes, CSV reading) and kwsos.hooks."""

from __future__ import annotations

import os

import pytest

from kwsos.errors import KwsosError
from kwsos.hooks import subtask_hook
from kwsos.io import atomic_output, csv_text, read_csv_rows, write_csv_atomic, write_json_atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_csv_round_trip_and_missing_columns(tmp_path):
    write_csv_atomic(tmp_path / "a.csv", [["x.wav", 1.5, "dog"]], ["filename", "onset", "label"])
    assert (tmp_path / "a.csv").read_text() == "filename,onset,label\nx.wav,1.5,dog\n"
    rows = read_csv_rows(tmp_path / "a.csv", ["filename", "label"])
    assert rows == [{"filename": "x.wav", "onset": "1.5", "label": "dog"}]
    with pytest.raises(KwsosError, match="missing column.*offset"):
        read_csv_rows(tmp_path / "a.csv", ["filename", "offset"])
    with pytest.raises(KwsosError, match="missing manifest"):
        read_csv_rows(tmp_path / "none.csv", what="manifest")
    assert csv_text([[1, "a,b"]]) == '1,"a,b"\n'
    write_json_atomic(tmp_path / "j.json", {"a": [1, 2]})
    assert (tmp_path / "j.json").read_text().endswith("]\n}\n")


def test_subtask_hook_reports_one_run_over_all_subtasks():
    calls = []

    def hook(step, *, completed, total, **info):
        calls.append((step, completed, total))

    second = subtask_hook(hook, 1, 3)
    second("train", completed=4, total=10)
    assert calls == [("train", 14, 30)]
    assert subtask_hook(hook, 0, 1) is hook and subtask_hook(None, 0, 3) is None


def test_remove_stale_temporaries_of_a_killed_writer(tmp_path):
    from kwsos.io import atomic_output, remove_stale_temporaries

    out = tmp_path / "det.csv"
    out.write_text("old")
    keep = [tmp_path / n for n in ("det.csv.journal", ".det.csv", ".det.abc.csv", "x.csv")]
    for p in keep:
        p.write_text("mine")
    stale = []

    class Killed(BaseException):
        pass

    for _ in range(2):  # two writers killed before their rename (the temporary is left)
        with pytest.raises(Killed), atomic_output(out) as tmp:
            tmp.write_text("half")
            stale.append(tmp)
            os.link(tmp, tmp.with_name(tmp.name + ".keep"))  # what a SIGKILL would leave
            raise Killed
    for p in stale:
        os.replace(p.with_name(p.name + ".keep"), p)
    assert sorted(remove_stale_temporaries(out)) == sorted(stale)
    assert all(p.exists() for p in keep) and out.read_text() == "old"
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "anomaly_score_a_section_00_test.csv").write_text("x")
    (folder / ".anomaly_score_a_section_00_test.k3j_9xq1.csv").write_text("half")
    assert [p.name for p in remove_stale_temporaries(folder)] == [
        ".anomaly_score_a_section_00_test.k3j_9xq1.csv"
    ]
    assert [p.name for p in folder.iterdir()] == ["anomaly_score_a_section_00_test.csv"]
