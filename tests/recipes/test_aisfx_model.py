"""recipes/alarm_osc/local/aisfx_model.py (the aisfx network used by aisfx_prior.py): preprocessing against Essentia's numbers and a hand-written reference,
checkpoint discovery and loading, and (when the aisfx wheel's checkpoint and model code are
available) equality with aisfx's own network."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kwsos.errors import KwsosError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "alarm_osc" / "local"))
import aisfx_model as A  # noqa: E402


def two_sines() -> np.ndarray:
    t = np.arange(8820) / 44100
    return (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)).astype(
        np.float32
    )


def test_filterbank_matches_essentia_values():
    fb = A.mel_filterbank()
    assert fb.shape == (96, 1025)
    np.testing.assert_allclose(fb.sum(1), 1.0, atol=1e-6)  # unit_sum
    # Essentia 2.1b6 MelBands(htkMel, warping, unit_sum), one-hot spectra: band 0 and band 3
    np.testing.assert_allclose(fb[0, :3], [0.0, 0.7150638, 0.2849362], atol=1e-6)
    np.testing.assert_allclose(fb[3, 3:8], [0.0, 0.1556, 0.6575, 0.1869, 0.0], atol=1e-4)
    # triangles: every band has its largest weight at the bin nearest its Mel centre
    edges = A._mel2hz(np.linspace(A._hz2mel(0.0), A._hz2mel(22050.0), 98))
    centres = edges[1:-1] / (22050 / 1024)
    wide = centres > 20  # narrow low bands hold only 1-3 bins
    assert np.all(np.abs(fb.argmax(1)[wide] - centres[wide]) <= 1)


def test_log_mel_matches_essentia_two_sines():
    """aisfx's Essentia spectrogram (spectrogram_essentia.compute_spectrogram) of a 0.2 s signal
    at 44.1 kHz, before the /9.4578 normalisation."""
    s = A.log_mel(two_sines(), 44100) * A.SPEC_MAX
    assert s.shape == (10, 96)  # ceil(8820 / 1024) + 1 frames
    np.testing.assert_array_equal(s.argmax(1), 24)
    want_sums = [347.1836, 56.979637, 56.802376, 56.912094, 56.887146, 56.82427, 56.96499,
                 56.763454, 262.4021, 313.04153]  # fmt: skip
    np.testing.assert_allclose(s.sum(1), want_sums, atol=2e-3)
    cols = [10, 20, 30, 40, 50, 60, 95]
    np.testing.assert_allclose(s[0, cols], [5.226217, 5.960542, 5.025814, 3.57123, 0.863677, 3.763496, 1.157995], atol=2e-4)  # fmt: skip
    np.testing.assert_allclose(s[4, cols], [0.033367, 1.956266, 0.331989, 0.000489, 0.000026, 0.002873, 0.0], atol=2e-4)  # fmt: skip
    np.testing.assert_allclose(s[9, cols], [4.884167, 5.618626, 4.684059, 3.229622, 0.602236, 3.421727, 0.850861], atol=2e-4)  # fmt: skip


def test_log_mel_matches_hand_reference():
    """Frame by frame with plain numpy: frame i covers samples (i - 1) * 1024 .. + 2048 (zeros
    outside), symmetric Hann, |rfft|^2, filterbank, log10(1e4 x + 1) / 9.4578."""
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal(5000)).astype(np.float32)
    fb = A.mel_filterbank().astype(np.float64)
    win = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / 2047) for i in range(2048)])
    n_frames = -(-len(x) // 1024) + 1
    ref = np.zeros((n_frames, 96))
    for i in range(n_frames):
        frame = np.zeros(2048)
        for j in range(2048):
            k = (i - 1) * 1024 + j
            if 0 <= k < len(x):
                frame[j] = x[k]
        power = np.abs(np.fft.rfft(frame * win)) ** 2
        ref[i] = np.log10(1e4 * (fb @ power) + 1) / 9.457798957824707
    got = A.log_mel(x, 44100)
    assert got.shape == (6, 96)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    peak = A.log_mel(x, 44100, peak_normalize=True)
    np.testing.assert_allclose(peak, A.log_mel(x / np.abs(x).max(), 44100), atol=1e-6)


def test_log_mel_resamples_and_rejects_bad_input():
    x = np.zeros(16000, np.float32)
    x[::160] = 0.5
    assert A.log_mel(x, 16000).shape == (-(-44100 // 1024) + 1, 96)
    with pytest.raises(KwsosError, match="mono"):
        A.log_mel(np.zeros((2, 100), np.float32))


def test_frame_blocks():
    spec = np.arange(174 * 2, dtype=np.float32).reshape(174, 2)
    b = A.frame_blocks(spec)  # the paper: hop 50, incomplete last block dropped
    assert b.shape == (2, 100, 2)
    np.testing.assert_array_equal(b[1], spec[50:150])
    b = A.frame_blocks(spec, hop=25, drop_partial=False)
    assert b.shape == (4, 100, 2)
    np.testing.assert_array_equal(b[3, :99], spec[75:])
    np.testing.assert_array_equal(b[3, 99], 0)
    short = A.frame_blocks(spec[:30])
    assert short.shape == (1, 100, 2) and not short[0, 30:].any()


def test_net_shape_and_size():
    net = A.AisfxNet().eval()
    assert sum(p.numel() for p in net.parameters()) == 4_686_144
    with torch.no_grad():
        out = net(torch.rand(2, 100, 96))
    assert out.shape == (2, 512) and (out >= 0).all()


def _fake_checkpoint(path, net: A.AisfxNet) -> None:
    """A file in aisfx's format: (CrossNet state_dict, {dataset: (np.int64 index, n_classes)})."""
    state = {f"embedding_net.{k}": v for k, v in net.state_dict().items()}
    state["fc.0.0.weight"] = torch.zeros(256, 512)
    torch.save((state, {"prosfx": (np.int64(0), 78)}), path)


def test_load_from_path_env_and_installed_package(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = A.AisfxNet()
    ckpt = tmp_path / "checkpoint.pth"
    _fake_checkpoint(ckpt, net)
    monkeypatch.delenv(A.CHECKPOINT_ENV, raising=False)
    emb = A.load_aisfx(ckpt)
    for k, v in net.state_dict().items():
        assert torch.equal(emb.net.state_dict()[k], v), k
    assert not emb.net.training
    monkeypatch.setenv(A.CHECKPOINT_ENV, str(ckpt))
    assert A.find_checkpoint() == ckpt
    monkeypatch.delenv(A.CHECKPOINT_ENV)
    # an installed aisfx whose import would fail: found without importing it
    pkg = tmp_path / "site" / "aisfx"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('numpy 1.23 required')\n")
    (pkg / "models" / "checkpoint.pth").write_bytes(ckpt.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "aisfx", raising=False)
    assert A.find_checkpoint() == pkg / "models" / "checkpoint.pth"
    assert "aisfx" not in sys.modules


def test_missing_or_bad_checkpoint_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(A.CHECKPOINT_ENV, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(
        A.importlib.metadata,
        "distribution",
        lambda name: (_ for _ in ()).throw(A.importlib.metadata.PackageNotFoundError(name)),
    )
    with pytest.raises(KwsosError, match="pip install --no-deps aisfx") as e:
        A.load_aisfx()
    assert "\n" not in str(e.value)
    with pytest.raises(KwsosError, match="not found"):
        A.load_aisfx(tmp_path / "nope.pth")
    monkeypatch.setenv(A.CHECKPOINT_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(KwsosError, match="KWSOS_AISFX_CHECKPOINT"):
        A.find_checkpoint()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(KwsosError, match="could not be read") as e:
        A.load_aisfx(bad)
    assert "\n" not in str(e.value)


def _real_checkpoint():
    try:
        return A.find_checkpoint()
    except KwsosError:
        return None


@pytest.mark.skipif(_real_checkpoint() is None, reason="aisfx checkpoint not installed")
def test_equal_to_aisfx_own_network():
    """aisfx's models/cnn2d.py (beside the checkpoint; it imports only torch) with the same
    weights gives the same embeddings."""
    ckpt = _real_checkpoint()
    src = ckpt.parent / "cnn2d.py"
    if not src.is_file():
        pytest.skip(f"no aisfx model code beside {ckpt}")
    spec = importlib.util.spec_from_file_location("_aisfx_cnn2d", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = mod.EmbeddingNet("max", 3, 1, 64)
    ref.load_state_dict(A._read_state(ckpt))
    ref.eval()
    emb = A.load_aisfx(ckpt)
    torch.manual_seed(0)
    x = torch.rand(3, 100, 96)
    with torch.no_grad():
        want, got = ref(x), emb.net(x)
    assert want.abs().max() > 1
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # and a whole waveform: 4 s at 16 kHz -> 2 blocks of the paper's hop
    wave = np.random.default_rng(0).standard_normal(64000).astype(np.float32) * 0.1
    assert emb(wave, 16000).shape == (2, 512)
