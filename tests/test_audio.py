import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import write

from kwsos.audio import (
    AudioError,
    audio_info,
    highpass_coefficients,
    load_audio,
    stream_audio,
    trim_silence,
    write_audio,
)


def reference_frontend(x: np.ndarray, sr: int) -> np.ndarray:
    """The obvious whole-signal frontend: mono, peak-normalise, torchaudio resample + biquad."""
    mono = x.mean(axis=1) if x.ndim == 2 else x
    mono = mono / np.abs(mono).max()
    y = AF.resample(torch.from_numpy(mono), sr, 16000)
    b, a = highpass_coefficients(50.0, 16000)
    return AF.lfilter(y[None], torch.tensor(a), torch.tensor(b), clamp=False)[0].numpy()


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_stream_equals_whole_file_reference(tmp_path, rng, sr):
    x = 0.1 * rng.standard_normal((int(sr * 3.3), 2))
    path = write(tmp_path / "a.wav", x, sr, subtype="FLOAT")
    whole = load_audio(path)
    blocks = list(stream_audio(path, block_s=0.37))
    assert len(blocks) > 5
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)
    ref = reference_frontend(x, sr)
    assert whole.shape == ref.shape == (int(np.ceil(len(x) * 16000 / sr)),)
    np.testing.assert_allclose(whole, ref, atol=1e-5)
    assert whole.dtype == np.float32


def test_highpass_matches_torchaudio_biquad(rng):
    x = torch.from_numpy(0.2 * rng.standard_normal(16000))
    b, a = highpass_coefficients(50.0, 16000)
    ours = AF.lfilter(x[None], torch.tensor(a), torch.tensor(b))[0]
    np.testing.assert_allclose(ours.numpy(), AF.highpass_biquad(x, 16000, 50.0).numpy(), atol=1e-10)


def test_highpass_kernel_is_bit_identical_to_scipy_lfilter(rng):
    from scipy.signal import lfilter

    from kwsos._biquad import biquad_filter

    b, a = highpass_coefficients(50.0, 16000)
    x = rng.standard_normal(20000)
    np.testing.assert_array_equal(biquad_filter(b, a, x)[0], lfilter(b, a, x))
    zi_ours, zi_ref = np.zeros(2), np.zeros(2)
    for block in np.array_split(x, [7, 1000, 1001, 15000]):  # the state carries over blocks
        y_ours, zi_ours = biquad_filter(b, a, block, zi_ours)
        y_ref, zi_ref = lfilter(b, a, block, zi=zi_ref)
        np.testing.assert_array_equal(y_ours, y_ref)
        np.testing.assert_array_equal(zi_ours, zi_ref)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000])
def test_sinc_resample_equals_torchaudio(rng, sr):
    from kwsos.audio import sinc_resample

    for n in (1, 5, 441, 3 * sr + 17):
        x = rng.standard_normal(n)
        ref = AF.resample(torch.from_numpy(x), sr, 16000).numpy()
        ours = sinc_resample(x, sr, 16000)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_highpass_removes_dc_and_hum(tmp_path):
    t = np.arange(32000) / 16000
    x = 0.5 + 0.3 * np.sin(2 * np.pi * 10 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
    y = load_audio(write(tmp_path / "dc.wav", x, subtype="FLOAT"))[8000:]
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert abs(y.mean()) < 1e-3
    assert spec[np.argmin(abs(freqs - 10))] < 0.15 * spec[np.argmin(abs(freqs - 1000))]


@pytest.mark.parametrize(
    "fmt,subtype", [("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]
)
def test_compressed_formats(tmp_path, fmt, subtype):
    t = np.arange(44100) / 44100
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / f"tone.{fmt}"
    sf.write(str(path), x, 44100, format=fmt.upper() if fmt != "mp3" else "MP3", subtype=subtype)
    y = load_audio(path)
    assert abs(len(y) - 16000) < 2000  # mp3 adds encoder padding
    assert 0.7 < np.abs(y[1600:]).max() <= 1.05  # after the filter start-up transient


def test_stereo_is_averaged(tmp_path):
    t = np.arange(16000) / 16000
    left = np.sin(2 * np.pi * 300 * t)
    path = write(
        tmp_path / "st.wav",
        np.stack([left, -left + 0.5 * np.sin(2 * np.pi * 900 * t)], 1),
        subtype="FLOAT",
    )
    y = load_audio(path, highpass_hz=None)
    np.testing.assert_allclose(y, np.sin(2 * np.pi * 900 * t) * 0.25 / 0.25, atol=1e-3)


@pytest.mark.parametrize("channels", [2, 3, 6])
def test_channels_are_averaged_exactly(tmp_path, channels):
    """Every channel count gives the channel mean of numpy (stereo has its own faster path)."""
    from kwsos.audio import _raw_blocks

    x = np.random.default_rng(channels).uniform(-0.9, 0.9, (5000, channels))
    path = write(tmp_path / "multi.wav", x, subtype="FLOAT")
    got = np.concatenate(list(_raw_blocks(path, 1024)))
    np.testing.assert_array_equal(got, x.astype(np.float32).astype(np.float64).mean(axis=1))


def test_errors(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(bad)
    empty = write(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(AudioError, match="empty"):
        load_audio(empty)
    silent = write(tmp_path / "silent.wav", np.zeros(1600))
    with pytest.raises(AudioError, match="silent"):
        load_audio(silent)
    with pytest.raises(AudioError, match="directory"):
        audio_info(tmp_path)


def test_trim_silence_keeps_the_sound():
    x = np.zeros(16000, np.float32)
    x[5000:9000] = np.sin(np.arange(4000) * 0.3)
    y = trim_silence(x, 16000, top_db=35, margin_s=0.0)
    # within one analysis frame (25 ms) of the true edges
    assert 4000 - 400 <= len(y) <= 4000 + 800
    assert np.abs(y).max() == pytest.approx(1.0, abs=1e-3)


def test_write_audio_atomic_roundtrip(tmp_path):
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    write_audio(tmp_path / "x.wav", x)
    y, sr = sf.read(str(tmp_path / "x.wav"), dtype="float32")
    assert sr == 16000 and np.array_equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


@pytest.mark.parametrize("rate", [16000, 44100])
def test_max_s_reads_the_file_as_if_it_ended_there(tmp_path, rate):
    from kwsos.audio import load_audio, load_clip

    rng = np.random.default_rng(7)
    x = rng.uniform(-0.3, 0.3, (int(3.5 * rate), 2))
    x[int(2.5 * rate) :] *= 3  # the loudest part lies after the first 2 s
    sf.write(tmp_path / "long.wav", x, rate, subtype="FLOAT")
    sf.write(tmp_path / "head.wav", x[: 2 * rate], rate, subtype="FLOAT")
    np.testing.assert_array_equal(
        load_clip(tmp_path / "long.wav", max_s=2.0), load_audio(tmp_path / "head.wav")
    )
