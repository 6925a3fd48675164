import json

import pytest

from kwsos.events import Event, EventFileError, format_events, read_events
from kwsos.io import write_text_atomic


def test_read_csv_header_tab_and_headerless(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("filename,onset,offset,event_label\nx.wav,1.0,2.0,credit card\nempty.wav\n")
    b = tmp_path / "b.tsv"
    b.write_text("x.wav\t1.0\t2.0\tcredit card\n")
    c = tmp_path / "c.csv"
    c.write_text("event_label,onset,offset,filename,cost\ncredit card,1,2,x.wav,0.25\n")
    ea, eb, ec = read_events(a), read_events(b), read_events(c)
    assert ea == eb == [Event("x.wav", 1.0, 2.0, "credit card")]
    assert ec == [Event("x.wav", 1.0, 2.0, "credit card", 0.25)]


@pytest.mark.parametrize(
    "text,match",
    [
        ("filename,onset,event_label\nx,1,a\n", "lacks column"),
        ("filename,onset,offset,event_label\nx,one,2,a\n", "must be numbers"),
        ("filename,onset,offset,event_label\nx,2,1,a\n", "onset < offset"),
        ("filename,onset,offset,event_label\nx,1,2\n", "expected columns"),
        ("filename,onset,offset,event_label\nx,1,2, \n", "empty event_label"),
    ],
)
def test_malformed(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(EventFileError, match=match):
        read_events(p)


def test_missing_and_bad_json(tmp_path):
    with pytest.raises(EventFileError, match="not found"):
        read_events(tmp_path / "none.csv")
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(EventFileError, match="invalid JSON"):
        read_events(p)


@pytest.mark.parametrize("fmt,suffix", [("csv", ".csv"), ("json", ".json")])
def test_format_round_trip(tmp_path, fmt, suffix):
    events = [Event("r.wav", 0.5, 1.25, "good morning", 0.1234), Event("r.wav", 3.0, 3.5, "a", 0.2)]
    p = tmp_path / f"out{suffix}"
    write_text_atomic(p, format_events(events, fmt))
    assert read_events(p) == events
    assert [q.name for q in tmp_path.iterdir()] == [p.name]


def test_audacity_and_json_shape():
    events = [Event("r.wav", 0.5, 1.25, "w", 0.1)]
    assert format_events(events, "audacity") == "0.500\t1.250\tw\n"
    assert json.loads(format_events(events, "json"))[0]["event_label"] == "w"


def test_reads_kws_dailytalk_annotations(tmp_path):
    p = tmp_path / "kws_dailytalk_test.csv"
    p.write_text(
        "idx,event_label,event_onset,event_offset,file,scene_label\n"
        "0,credit card,1.25,1.9,data\\\\12\\\\3_1_d12.wav,dialogue\n"
    )
    (e,) = read_events(p)
    assert (e.label, e.onset, e.offset) == ("credit card", 1.25, 1.9)
    assert e.filename.endswith("3_1_d12.wav")
