"""Property-based tests of the input layer (hypothesis): every input either works or raises the
project's error type (KwsosError, one line), never anything else.

CI runs a short fuzz (40 examples per test). The long run::

    KWSOS_FUZZ_EXAMPLES=2000 python -m pytest -q tests/test_properties.py
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kwsos.errors import KwsosError

FIX = Path(__file__).parent / "fixtures"
FAST = settings(
    max_examples=int(os.environ.get("KWSOS_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DEMO_VALIDATION = (
    Path(__file__).resolve().parent.parent / "kwsos" / "data" / "demo" / "validation.flac"
)


@FAST
@given(
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    channels=st.integers(1, 3),
    n=st.integers(0, 4000),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "DOUBLE"]),
    special=st.sampled_from([None, "nan", "inf", "silent", "clip"]),
    seed=st.integers(0, 2**16),
)
def test_audio_reader_works_or_raises_kwsos_error(rate, channels, n, subtype, special, seed):
    from kwsos.audio import load_audio

    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, 0.5, (n, channels))
    if special == "silent":
        x[:] = 0
    elif special == "clip":
        x *= 10
    elif special in ("nan", "inf") and n and subtype in ("FLOAT", "DOUBLE"):
        x[rng.integers(n), 0] = np.nan if special == "nan" else np.inf
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        sf.write(path, x, rate, subtype=subtype)
        try:
            y = load_audio(path)
        except KwsosError as exc:
            assert "\n" not in str(exc)
            return
        assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y))


@FAST
@given(text=st.text(alphabet=st.sampled_from(list('ab.wv,;\t\n 0123456789-e"x')), max_size=120))
def test_event_reader_works_or_raises_kwsos_error(text):
    from kwsos.events import read_events

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.csv"
        path.write_text(text)
        try:
            events = read_events(path)
        except KwsosError as exc:
            assert "\n" not in str(exc)
            return
        for e in events:
            assert 0 <= e.onset < e.offset < np.inf and e.label and e.filename


def _mutate(obj, path, value):
    cur = obj
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


BANK_META = json.loads((FIX / "bank_hfcc_v010" / "bank.json").read_text())
BANK_PATHS = list(_paths(BANK_META))
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


@FAST
@given(where=st.sampled_from(BANK_PATHS), value=JUNK)
def test_bank_loader_works_or_raises_kwsos_error(where, value):
    from kwsos.tasks.kws import KeywordSpotter

    meta = json.loads(json.dumps(BANK_META))
    _mutate(meta, where, value)
    with tempfile.TemporaryDirectory() as tmp:
        bank = Path(tmp) / "bank"
        shutil.copytree(FIX / "bank_hfcc_v010", bank)
        (bank / "bank.json").write_text(json.dumps(meta))
        try:
            sp = KeywordSpotter.load(bank)
            sp.detect(DEMO_VALIDATION)
        except KwsosError as exc:
            assert "\n" not in str(exc)


@FAST
@given(
    which=st.sampled_from(["template", "shot"]),
    kind=st.sampled_from(["empty", "nan", "wrong_dim", "int", "garbage", "3d"]),
)
def test_damaged_bank_files_give_one_bank_error(which, kind):
    from kwsos.tasks.kws import BankError, KeywordSpotter

    with tempfile.TemporaryDirectory() as tmp:
        bank = Path(tmp) / "bank"
        shutil.copytree(FIX / "bank_hfcc_v010", bank)
        meta = json.loads((bank / "bank.json").read_text())
        entry = meta["keywords"]["banana"]
        target = bank / (
            entry["templates"][0] if which == "template" else entry["shots"][0]["file"]
        )
        if kind == "garbage":
            target.write_bytes(b"not a file of that kind")
        elif which == "template":
            arr = {
                "empty": np.zeros((0, 39), np.float32),
                "nan": np.full((5, 39), np.nan, np.float32),
                "wrong_dim": np.zeros((5, 7), np.float32),
                "int": np.zeros((5, 39), np.int64),
                "3d": np.zeros((2, 5, 39), np.float32),
            }[kind]
            np.save(target, arr)
        else:
            data = {
                "empty": np.zeros(0, np.float32),
                "nan": np.full(800, np.nan, np.float32),
                "wrong_dim": np.zeros((800, 2), np.float32),
                "int": np.zeros(800, np.int16),
                "3d": np.zeros((800, 3), np.float32),
            }[kind]
            subtype = "PCM_16" if kind == "int" else "FLOAT"
            sf.write(target, data, 16000 if kind != "int" else 8000, format="WAV", subtype=subtype)
        with pytest.raises(BankError) as info:
            KeywordSpotter.load(bank)
        assert "\n" not in str(info.value) and "bank" in str(info.value)


@pytest.mark.parametrize(
    "fmt, message",
    [("kwsos-bank/99", "newer kwsos"), ("other-bank/1", "not a kwsos keyword bank"),
     (None, "not a kwsos keyword bank")],
)  # fmt: skip
def test_bank_format_is_checked(tmp_path, fmt, message):
    from kwsos.tasks.kws import BankError, KeywordSpotter

    bank = tmp_path / "bank"
    shutil.copytree(FIX / "bank_hfcc_v010", bank)
    meta = json.loads((bank / "bank.json").read_text())
    meta["format"] = fmt
    (bank / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match=message):
        KeywordSpotter.load(bank)


@pytest.mark.parametrize(
    "where, value, field",
    [(("config", "threshold"), "x", "threshold"), (("config", "threshold"), None, "threshold"),
     (("config", "threshold"), -5, "threshold"), (("config", "steps"), [[0, 1]], "steps"),
     (("config", "block_s"), 0, "block_s"), (("config", "steps"), "garbage", "steps"),
     (("keywords", "banana", "shots", 0, "file"), "../../etc/passwd", "inside the bank")],
)  # fmt: skip
def test_bank_fields_are_validated_by_name(tmp_path, where, value, field):
    from kwsos.tasks.kws import BankError, KeywordSpotter

    bank = tmp_path / "bank"
    shutil.copytree(FIX / "bank_hfcc_v010", bank)
    meta = json.loads((bank / "bank.json").read_text())
    _mutate(meta, where, value)
    (bank / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match=field):
        KeywordSpotter.load(bank)


def test_event_reader_rejects_what_it_cannot_read(tmp_path):
    from kwsos.events import read_events

    p = tmp_path / "ref.csv"
    p.write_text("filename;onset;offset;event_label\na.wav;1.0;2.0;dog\n")
    assert [(e.filename, e.onset, e.label) for e in read_events(p)] == [("a.wav", 1.0, "dog")]
    p.write_text("a.wav,1.0,inf,dog\n")
    with pytest.raises(KwsosError, match="onset < offset"):
        read_events(p)
    p.write_text("this is not an annotation file\n")
    with pytest.raises(KwsosError, match="not an event row"):
        read_events(p)
    p.write_text("a.wav\nb.flac\n")  # two files without events
    assert read_events(p) == []
