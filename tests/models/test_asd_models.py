"""ASD embedding networks (Diss. 3.2.2 / 5.3.1, Tables 4, 14, 15) and the DCASE autoencoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kwsos.models import model_from_dict
from kwsos.models.asd import (
    LogMelResNet,
    TwoBranchNet,
    asd_model_from_dict,
    magnitude_dft,
    magnitude_stft,
    temporal_mean_normalisation,
)
from kwsos.models.autoencoder import AutoencoderDetector, DcaseAutoencoder, frame_vectors

SR = 16000
SMALL = {"channels": (4, 8), "blocks_per_stage": 1, "dft_channels": 8, "dft_units": 16, "dim": 16}


def _bias_names(net: torch.nn.Module) -> list[str]:
    return [n for n, _ in net.named_parameters() if n.rsplit(".", 1)[-1] == "bias"]


# --------------------------------------------------------------------------- TwoBranchNet


def test_table14_table15_geometry_and_size():
    net = TwoBranchNet(160000)  # 10 s at 16 kHz
    assert net.dft_net.flat_dim == 1280  # Table 14: 80000 -> 1250 -> 40 -> 10 frames x 128
    assert net.stft_net.embed.in_features == 16 * 128  # Table 15: 10 x 16 x 128 before pooling
    assert net.out_dim == 256 and net.n_branches == 2
    n_params = sum(p.numel() for p in net.parameters())
    assert 2.0e6 < n_params < 3.0e6


@pytest.mark.parametrize("n_samples", [3072, 8000, 12345])
def test_shapes_for_several_lengths(rng, n_samples):
    net = TwoBranchNet(n_samples, **SMALL).eval()
    wave = torch.from_numpy(rng.standard_normal((3, n_samples)).astype(np.float32))
    with torch.no_grad():
        spec, dft = net.branch_inputs(wave)
        embs = net.embed_branches(spec, dft)
        out = net(wave)
    n_frames = 1 + (n_samples - 1024) // 512
    assert spec.shape == (3, n_frames, 513) and dft.shape == (3, n_samples // 2)
    assert [e.shape for e in embs] == [(3, 16), (3, 16)]
    assert out.shape == (3, net.out_dim) == (3, 32)
    torch.testing.assert_close(out, torch.cat(embs, -1))


def test_wrong_length_and_too_short():
    net = TwoBranchNet(4000, **SMALL)
    with pytest.raises(ValueError, match="crop, pad or tile"):
        net(torch.zeros(2, 4001))
    with pytest.raises(ValueError, match="at least"):
        TwoBranchNet(3071)


def test_dft_input_is_rfft_magnitude_without_last_bin(rng):
    wave = torch.from_numpy(rng.standard_normal((2, 5000)).astype(np.float32))
    net = TwoBranchNet(5000, **SMALL)
    dft = net.branch_inputs(wave)[1]
    ref = np.abs(np.fft.rfft(wave.numpy().astype(np.float64), axis=1))[:, :2500]
    np.testing.assert_allclose(dft.numpy(), ref, rtol=1e-4, atol=1e-3)
    # odd length: rfft has (n + 1) // 2 bins, the reference keeps n // 2
    assert magnitude_dft(torch.zeros(1, 7)).shape == (1, 3)


def test_stft_matches_numpy_frames(rng):
    wave = rng.standard_normal(4096).astype(np.float32)
    spec = magnitude_stft(torch.from_numpy(wave)[None], n_fft=1024, hop=512)[0].numpy()
    window = np.hanning(1025)[:-1]  # periodic Hann
    frames = np.stack([wave[k * 512 : k * 512 + 1024] for k in range(7)])  # no centre padding
    ref = np.abs(np.fft.rfft(frames * window, axis=1))
    assert spec.shape == (7, 513)
    np.testing.assert_allclose(spec, ref, rtol=1e-3, atol=1e-3)


def test_tmn_hand_worked_and_offset_invariance(rng):
    spec = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])  # (B=1, T=2, F=2), means per bin 2 and 4
    expected = torch.tensor([[[-1.0, -2.0], [1.0, 2.0]]])
    torch.testing.assert_close(temporal_mean_normalisation(spec), expected)
    # A stationary per-frequency offset vanishes; a per-frequency gain does not.
    net = TwoBranchNet(6000, **SMALL).eval()
    wave = torch.from_numpy(rng.standard_normal((2, 6000)).astype(np.float32))
    spec, dft = net.branch_inputs(wave)
    offset = torch.from_numpy(rng.uniform(0, 50, 513).astype(np.float32))
    torch.testing.assert_close(temporal_mean_normalisation(spec + offset), spec)
    with torch.no_grad():
        e0 = net.embed_branches(spec, dft)[0]
        e1 = net.embed_branches(spec + offset, dft)[0]  # TMN is applied again inside
        e2 = net.embed_branches(spec * (1 + offset), dft)[0]
    torch.testing.assert_close(e1, e0, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(e2, e0, atol=1e-3)


def test_bias_switch():
    net = TwoBranchNet(4000, **SMALL)  # paper default: no bias terms anywhere
    assert _bias_names(net) == []
    with_bias = TwoBranchNet(4000, bias=True, **SMALL)
    names = _bias_names(with_bias)
    assert any("dft_net.embed" in n for n in names) and any("stft_net.embed" in n for n in names)
    assert any("input_norm" in n for n in names)  # batch-norm shifts too
    reference = TwoBranchNet(4000, norm_shift=True, **SMALL)  # Keras reference: BN shifts only
    kinds = {
        type(reference.get_submodule(n.rsplit(".", 1)[0])).__name__ for n in _bias_names(reference)
    }
    assert kinds == {"BatchNorm1d", "BatchNorm2d"}
    assert _bias_names(LogMelResNet(bias=False, channels=(4, 8), blocks_per_stage=1)) == []


def test_zero_is_a_fixed_point_without_bias():
    # Diss. Prop. 2.4/2.5: without bias terms a constant-zero input maps to the zero embedding.
    wave = torch.zeros(2, 4000)
    with torch.no_grad():
        assert TwoBranchNet(4000, **SMALL).eval()(wave).abs().max() == 0
        assert TwoBranchNet(4000, bias=True, **SMALL).eval()(wave).abs().max() > 0


def test_deterministic_under_seed_and_round_trip(rng):
    wave = torch.from_numpy(rng.standard_normal((2, 4000)).astype(np.float32))
    torch.manual_seed(3)
    a = TwoBranchNet(4000, negative_slope=0.1, **SMALL).eval()
    torch.manual_seed(3)
    b = TwoBranchNet(4000, negative_slope=0.1, **SMALL).eval()
    with torch.no_grad():
        torch.testing.assert_close(a(wave), b(wave), rtol=0, atol=0)
    d = json.loads(json.dumps(a.to_dict()))
    for build in (asd_model_from_dict, model_from_dict):
        clone = build(d)
        assert isinstance(clone, TwoBranchNet) and clone.to_dict() == a.to_dict()
        clone.load_state_dict(a.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(clone.eval()(wave), a(wave))
    with pytest.raises(ValueError, match="unknown ASD model"):
        asd_model_from_dict({"name": "ClipResNet"})


# --------------------------------------------------------------------------- LogMelResNet


def test_logmel_resnet_table4_input_and_round_trip(rng):
    net = LogMelResNet(channels=(4, 8), blocks_per_stage=1).eval()
    wave = rng.standard_normal((2, 16000)).astype(np.float32)
    (logmel,) = net.branch_inputs(torch.from_numpy(wave))
    assert logmel.shape == (2, 1 + 16000 // 512, 128)  # centred frames: 313 for 10 s
    assert net.n_branches == 1 and net(torch.from_numpy(wave)).shape == (2, net.out_dim)
    # numpy reference of the log-Mel power spectrogram in dB (reflect-padded, periodic Hann)
    x = np.pad(wave[0].astype(np.float64), 512, mode="reflect")
    frames = np.stack([x[k * 512 : k * 512 + 1024] for k in range(logmel.shape[1])])
    power = np.abs(np.fft.rfft(frames * np.hanning(1025)[:-1], axis=1)) ** 2
    ref = 10 * np.log10(np.maximum(power @ net.logmel.fb.numpy().astype(np.float64), 1e-10))
    np.testing.assert_allclose(logmel[0].numpy(), ref, rtol=1e-3, atol=1e-2)
    clone = asd_model_from_dict(json.loads(json.dumps(net.to_dict())))
    clone.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            clone.eval()(torch.from_numpy(wave)), net(torch.from_numpy(wave))
        )


# --------------------------------------------------------------------------- autoencoder


def test_frame_vectors_layout():
    logmel = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (B, T=4, n_mels=3)
    v = frame_vectors(logmel, 2)
    assert v.shape == (2, 3, 6)
    torch.testing.assert_close(v[0, 1], torch.cat([logmel[0, 1], logmel[0, 2]]))  # frame-major
    with pytest.raises(ValueError):
        frame_vectors(logmel, 5)


def test_autoencoder_architecture():
    ae = DcaseAutoencoder(640)
    linears = [m for m in ae.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [128] * 4 + [8] + [128] * 4 + [640]
    assert ae.encode(torch.zeros(3, 640)).shape == (3, 8)
    assert ae(torch.zeros(3, 640)).shape == (3, 640)


def _clips(rng, n, kind):
    t = np.arange(SR) / SR
    if kind == "sine":
        f = rng.uniform(900, 1100, n)
        return [0.5 * np.sin(2 * np.pi * fi * t + rng.uniform(0, 6.3)) for fi in f]
    return [0.3 * rng.standard_normal(SR) for _ in range(n)]


def test_autoencoder_learns_normal_sound(rng):
    train, held_out, noise = (
        _clips(rng, 12, "sine"),
        _clips(rng, 4, "sine"),
        _clips(rng, 4, "noise"),
    )
    det = AutoencoderDetector(n_mels=32, epochs=25, batch_size=64, lr=1e-2, device="cpu")
    # Before training, the white noise reconstructs better than the sines (its dB values are
    # closer to zero): the test can only pass if the autoencoder learned the normal sound.
    calls = []
    det.hook = lambda step, **kw: calls.append((step, kw["completed"], kw["total"]))
    det.fit(train)
    assert calls[-1] == ("train", 25, 25) and len(det.log_.losses) == 25
    s_normal, s_noise = det.score_samples(held_out), det.score_samples(np.stack(noise))
    assert s_normal.shape == (4,) and s_noise.min() > s_normal.max()
    # persistence: plain dict with CPU tensors; same scores after the round trip
    clone = AutoencoderDetector.from_dict(det.to_dict())
    np.testing.assert_allclose(clone.score_samples(held_out), s_normal, rtol=1e-6)


def test_autoencoder_deterministic_and_errors(rng):
    clips = _clips(rng, 4, "sine")
    kw = {"n_mels": 16, "epochs": 2, "batch_size": 32, "device": "cpu", "seed": 5}
    a = AutoencoderDetector(**kw).fit(clips).score_samples(clips)
    b = AutoencoderDetector(**kw).fit(clips).score_samples(clips)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="not fitted"):
        AutoencoderDetector().score_samples(clips)
    with pytest.raises(ValueError, match="clip 0"):
        AutoencoderDetector(**kw).fit([np.zeros(100)])


def test_two_branch_net_trains_in_the_shared_loop(rng):
    # Waveforms in, mixup on waveforms, sub-cluster AdaCos with fixed centres (Diss. 5.3.1).
    from kwsos.losses.adacos import SubClusterAdaCos
    from kwsos.training import TrainConfig, train

    t = np.arange(4000) / SR
    labels = np.repeat([0, 1], 6)
    waves = np.stack(
        [np.sin(2 * np.pi * (500 + 1500 * y) * t + rng.uniform(0, 6)) for y in labels]
    ).astype(np.float32)
    net = TwoBranchNet(4000, **SMALL)
    loss = SubClusterAdaCos(2, net.out_dim, n_centers=4, trainable_centers=False, seed=0)
    config = TrainConfig(epochs=2, batch_size=4, device="cpu", augment=False, precision="fp32")
    log = train(net, loss, waves, (np.eye(2, dtype=np.float32)[labels],), labels, config)
    assert log.epochs_run == 2 and np.isfinite(log.losses).all()
    with torch.no_grad():
        assert net(torch.from_numpy(waves[:2])).shape == (2, 32)
