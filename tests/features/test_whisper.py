"""Whisper features (issue #19): the exact log-Mel input against a torch reference, the
encoder's block streaming, model lookup, and the TACos head on top."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs_whisper_encoder

from kwsos.errors import KwsosError
from kwsos.features import get_extractor
from kwsos.features.whisper import (
    MODEL_ENV,
    WhisperFeatures,
    find_model,
    log_mel_spectrogram,
    slaney_mel_filterbank,
)


def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """whisper.audio.log_mel_spectrogram, written with torch.stft and torchaudio's Slaney Mel."""
    import torch
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(
        201, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney"
    ).T
    st = torch.stft(
        torch.from_numpy(x).double(),
        400,
        160,
        window=torch.hann_window(400).double(),
        return_complex=True,
    )
    mel = fb.double() @ (st[..., :-1].abs() ** 2)
    log_spec = mel.clamp(min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).numpy()


def test_mel_filterbank_equals_librosa_slaney():
    import torchaudio

    ref = (
        torchaudio.functional.melscale_fbanks(
            201, 0.0, 8000.0, 80, 16000, norm="slaney", mel_scale="slaney"
        )
        .numpy()
        .T
    )
    ours = slaney_mel_filterbank()
    assert ours.shape == (80, 201)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("n", [400, 16000, 16000 * 3 + 77])
def test_log_mel_equals_reference(rng, n):
    t = np.arange(n) / 16000
    x = (0.1 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    x[: n // 3] = 0.0  # digital silence, so that the 8-decade floor is reached
    ours = log_mel_spectrogram(x)
    ref = _reference_log_mel(x)
    assert ours.shape == ref.shape == (80, n // 160)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    if n >= 16000:  # the floor is hit in the silent third
        assert ours.min() == pytest.approx(ours.max() - 2.0, abs=1e-5)


def test_log_mel_rejects_stereo_and_handles_empty():
    with pytest.raises(ValueError, match="mono"):
        log_mel_spectrogram(np.zeros((2, 1600), np.float32))
    assert log_mel_spectrogram(np.zeros(100, np.float32)).shape == (80, 0)


def test_options_are_checked():
    with pytest.raises(KwsosError, match="block_s"):
        get_extractor("whisper", block_s=29.0, context_s=1.0)
    with pytest.raises(KwsosError, match="compute_type"):
        get_extractor("whisper", compute_type="int4")
    with pytest.raises(KwsosError, match="pad_s"):
        get_extractor("whisper", pad_s=5.0)  # shorter than a block


def test_frame_geometry():
    ex = WhisperFeatures()
    assert ex.frame_rate == 50.0
    assert [ex.n_frames(n) for n in (0, 159, 160, 320, 480, 16000)] == [0, 0, 1, 1, 2, 50]
    onset, offset = ex.frame_bounds_s(np.array([0, 10]), np.array([4, 10]))
    np.testing.assert_allclose(onset, [0.0, 0.19])
    np.testing.assert_allclose(offset, [0.09, 0.21])


def test_model_lookup_explicit_folder(tmp_path, monkeypatch):
    with pytest.raises(KwsosError, match="not a CTranslate2 Whisper model folder"):
        find_model(str(tmp_path))
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    with pytest.raises(KwsosError, match=MODEL_ENV):
        find_model()
    (tmp_path / "model.bin").write_bytes(b"")
    assert find_model() == tmp_path


def test_model_lookup_names_the_install_when_missing(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    with pytest.raises(KwsosError, match=r"pip install 'kwsos\[whisper\]'"):
        find_model(model="no-such-model")


def test_to_dict_round_trip_leaves_out_an_empty_model_dir():
    ex = get_extractor("whisper", block_s=8.0, shot_pad_s=10.0)
    d = ex.to_dict()
    assert "model_dir" not in d and d["name"] == "whisper"
    from kwsos.features import extractor_from_dict

    assert extractor_from_dict(d) == ex


def _speechlike(rng, seconds: float) -> np.ndarray:
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (
        env * np.sin(2 * np.pi * (200 + 80 * np.sin(2 * np.pi * 0.5 * t)) * t)
        + 0.05 * rng.standard_normal(n)
    ).astype(np.float32)


@needs_whisper_encoder
def test_stream_equals_whole_signal_for_any_cut(rng):
    ex = get_extractor("whisper", block_s=2.0, context_s=0.5)  # several blocks in 5.3 s
    x = _speechlike(rng, 5.3)
    whole = ex(x)
    assert whole.shape == (ex.n_frames(len(x)), 384)
    assert np.isfinite(whole).all()
    for seed in range(3):
        cuts = np.sort(np.random.default_rng(seed).choice(len(x), 7, replace=False))
        parts = np.concatenate(list(ex.stream(np.split(x, cuts))))
        np.testing.assert_array_equal(parts, whole)


@needs_whisper_encoder
def test_blocks_see_their_context(rng):
    """Frames near a block edge depend on the audio beyond it (the context), frames of a block
    do not depend on audio more than one context away."""
    ex = get_extractor("whisper", block_s=2.0, context_s=0.5)
    x = _speechlike(rng, 6.0)
    y = x.copy()
    y[int(4.6 * 16000) :] = 0.0  # change audio from 4.6 s on (block 2 is 4-6 s)
    a, b = ex(x), ex(y)
    assert np.array_equal(a[:100], b[:100])  # blocks 0-1 (0-4 s) read audio up to 4.5 s
    assert not np.allclose(a[200:], b[200:])


@needs_whisper_encoder
def test_shot_padding_changes_only_short_signals(rng):
    ex = get_extractor("whisper", shot_pad_s=10.0)
    short = _speechlike(rng, 0.8)
    assert ex.shot_features(short).shape == ex(short).shape
    assert not np.allclose(ex.shot_features(short), ex(short))
    long = _speechlike(rng, 12.0)  # longer than one block: never padded
    np.testing.assert_array_equal(ex.shot_features(long), ex(long))


@needs_whisper_encoder
def test_whisper_tacos_head_streams_exactly(rng):
    from kwsos.models.whisper_head import WhisperHead

    ex = get_extractor("whisper_tacos", block_s=2.0, context_s=0.5)
    with pytest.raises(ValueError, match="no trained head"):
        ex(np.zeros(16000, np.float32))
    import torch

    torch.manual_seed(0)
    ex = ex.with_net(WhisperHead(dim=16))
    x = _speechlike(rng, 4.7)
    whole = ex(x)  # the numpy head, streamed over the encoder's blocks
    assert whole.shape == (ex.n_frames(len(x)), 16)
    enc = ex.encoder(x)
    with torch.inference_mode():  # the torch module, one pass over the whole sequence
        ref = ex.net(torch.from_numpy(enc)[None])[0].numpy()
    np.testing.assert_allclose(whole, ref, atol=1e-4)
    cuts = np.sort(rng.choice(len(x), 5, replace=False))
    np.testing.assert_array_equal(np.concatenate(list(ex.stream(np.split(x, cuts)))), whole)


@needs_whisper_encoder
def test_whisper_tacos_enroll_train_save_load(audio_set, tmp_path):
    from kwsos.tasks.kws import KeywordSpotter, SpotterConfig

    sp = KeywordSpotter(SpotterConfig.for_features("whisper-tacos"))
    assert sp.learned and sp.feature_name == "whisper-tacos"
    sp.set_training(n_centers=2, background_clips=4, train={"max_steps": 5, "seed": 0})
    for name, shots in audio_set["shots"].items():
        sp.enroll(name, shots)
    assert sp.needs_training
    log = sp.train_features()
    assert log.losses and np.isfinite(log.losses).all()
    assert not sp.needs_training
    assert sp.extractor.training["init"] == "pretrained"  # started from the bundled head
    sp.set_threshold(2.0)  # everything below the maximal cost: compare the raw candidates
    before = sp.detect(audio_set["recording"])
    sp.save(tmp_path / "bank")
    assert (tmp_path / "bank" / "whisper_head.npz").is_file()
    assert not (tmp_path / "bank" / "model.pt").exists()
    loaded = KeywordSpotter.load(tmp_path / "bank")
    assert loaded.extractor.net is None and loaded.extractor.has_net  # numpy weights only
    assert loaded.learned and not loaded.needs_training
    assert loaded.extractor.head == sp.extractor.head
    after = loaded.detect(audio_set["recording"])
    # searching a saved whisper-tacos bank never imports torch (~430 MB with the CUDA build)
    import subprocess
    import sys

    code = (
        "import sys; from kwsos.tasks.kws import KeywordSpotter; "
        f"KeywordSpotter.load({str(tmp_path / 'bank')!r}).detect({str(audio_set['recording'])!r}); "
        "print('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stdout + res.stderr
    assert [(e.label, round(e.onset, 3)) for e in after] == [
        (e.label, round(e.onset, 3)) for e in before
    ]


def test_bundled_pretrained_head():
    import torch

    from kwsos.embeddings.whisper import load_pretrained_head
    from kwsos.models.whisper_head import WhisperHead

    state, meta = load_pretrained_head()
    head = WhisperHead(**{k: v for k, v in meta["arch"].items() if k != "name"})
    head.load_state_dict(state)  # the architecture the library builds
    assert head.to_dict() == WhisperHead().to_dict()
    # validated on held-out words x held-out voices, better than the raw encoder frames
    raw = meta["history"][0]["raw_encoder_auc"]
    assert meta["best_val_auc"] > raw + 0.1
    assert all(torch.isfinite(v).all() for v in state.values())


def test_init_option_is_checked():
    with pytest.raises(KwsosError, match="init"):
        get_extractor("whisper_tacos", init="imagenet")


@needs_whisper_encoder
def test_damaged_head_in_a_bank_is_one_line(audio_set, tmp_path):
    import numpy as np

    from kwsos.tasks.kws import BankError, KeywordSpotter, SpotterConfig

    sp = KeywordSpotter(SpotterConfig.for_features("whisper-tacos"))
    sp.set_training(n_centers=1, background_clips=2, train={"max_steps": 2})
    sp.enroll("alpha", audio_set["shots"]["alpha"])
    sp.enroll("beta", audio_set["shots"]["beta"])
    sp.fit()
    sp.save(tmp_path / "bank")
    np.savez(tmp_path / "bank" / "whisper_head.npz", **{"net.1.weight": np.zeros((2, 2, 2))})
    with pytest.raises(BankError, match="whisper_head.npz: weights"):
        KeywordSpotter.load(tmp_path / "bank")
