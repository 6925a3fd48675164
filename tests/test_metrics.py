import pytest

from kwsos.events import Event
from kwsos.metrics import event_based_scores, file_key


def E(f, on, off, lab):
    return Event(f, on, off, lab)


def test_hand_worked_micro_f1():
    ref = [E("a.wav", 1.0, 2.0, "x"), E("a.wav", 3.0, 4.0, "y"), E("b.wav", 0.5, 1.0, "x")]
    est = [
        E("dir/a.wav", 1.15, 2.1, "x"),  # hit: onset within 0.2 s, offset within max(0.2, 0.5*1 s)
        E("dir/a.wav", 3.3, 4.0, "y"),  # miss: onset 0.3 s late
        E("b.wav", 0.5, 1.0, "y"),  # wrong label
    ]
    s = event_based_scores(ref, est)
    # TP = 1, n_est = 3, n_ref = 3 -> P = R = F1 = 1/3
    assert (s.precision, s.recall, s.f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert s.n_ref == 3 and s.n_est == 3
    assert s.per_label["x"].f1 == pytest.approx(2 / 3)  # 1 TP, 1 est, 2 ref
    assert s.per_label["y"].recall == 0.0


def test_offset_collar_is_half_the_length():
    ref = [E("a.wav", 0.0, 2.0, "x")]
    assert event_based_scores(ref, [E("a.wav", 0.0, 2.9, "x")]).f1 == 1.0  # within 1.0 s
    assert event_based_scores(ref, [E("a.wav", 0.0, 3.1, "x")]).f1 == 0.0


def test_false_alarms_in_files_without_reference_count():
    ref = [E("a.wav", 0.0, 1.0, "x")]
    est = [E("a.wav", 0.0, 1.0, "x"), E("c.wav", 0.0, 1.0, "x")]
    assert event_based_scores(ref, est).precision == pytest.approx(0.5)
    assert event_based_scores(ref, est, files=["a.wav"]).precision == 1.0


def test_file_key_windows_paths():
    assert file_key("audio\\sub\\x.wav") == "x.wav" == file_key("audio/sub/x.wav")
