"""EmbeddingFeatures: the exact pipeline against a plain reference, streaming == whole signal."""

import numpy as np
import pytest
import torch

from kwsos.embeddings.temporal import EmbeddingFeatures
from kwsos.features import LogMel, gather_segments, inference_starts
from kwsos.models import TemporalResNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TemporalResNet(channels=(4, 8, 8, 16), dim=16).eval()


@pytest.fixture(scope="module")
def wave():
    rng = np.random.default_rng(1)
    t = np.arange(int(3.3 * 16000)) / 16000
    return (
        0.3 * np.sin(2 * np.pi * 440 * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))
    ).astype(np.float32)


def reference_exact(net, wave):
    """Loop reference of Diss. Fig. 28: embed every segment, average per frame."""
    frames = LogMel()(wave)
    n = len(frames)
    starts = inference_starts(n)
    with torch.no_grad():
        emb = net(torch.from_numpy(gather_segments(frames, starts))).numpy()
    out = np.zeros((n, emb.shape[2]))
    for i in range(n):
        vals = [emb[j, i - s] for j, s in enumerate(starts) if s <= i < s + 16]
        out[i] = np.mean(vals, axis=0)
    return out


def test_exact_matches_reference(net, wave):
    ex = EmbeddingFeatures(mode="exact", precision="fp32").with_net(net)
    np.testing.assert_allclose(ex(wave), reference_exact(net, wave), atol=1e-5)


def test_bf16_is_close_to_fp32(net, wave):
    a = EmbeddingFeatures(mode="conv", precision="fp32").with_net(net)(wave)
    b = EmbeddingFeatures(mode="conv", precision="bf16").with_net(net)(wave)
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


@pytest.mark.parametrize("mode", ["exact", "hop", "conv"])
def test_stream_equals_whole(net, wave, mode):
    ex = EmbeddingFeatures(mode=mode, hop_frames=4, batch_segments=16, precision="fp32").with_net(
        net
    )
    whole = ex(wave)
    assert whole.shape == (ex.n_frames(len(wave)), 16)
    for block in (1000, 4097, 16000):
        parts = list(ex.stream(wave[i : i + block] for i in range(0, len(wave), block)))
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_conv_and_hop_approximate_exact(net, wave):
    exact = EmbeddingFeatures(mode="exact").with_net(net)(wave)
    for mode in ("hop", "conv"):
        approx = EmbeddingFeatures(mode=mode, hop_frames=2).with_net(net)(wave)
        cos = (
            np.sum(exact * approx, 1)
            / np.linalg.norm(exact, axis=1)
            / np.linalg.norm(approx, axis=1)
        )
        assert np.median(cos) > 0.9, mode


def test_to_dict_round_trip_without_weights(net):
    from kwsos.features import extractor_from_dict

    ex = EmbeddingFeatures(mode="hop", hop_frames=8).with_net(net)
    d = ex.to_dict()
    assert "net" not in d and d["model"]["dim"] == 16
    again = extractor_from_dict(d)
    assert again.mode == "hop" and again.net is None
    with pytest.raises(ValueError, match="no trained network"):
        again(np.zeros(4000, np.float32))


# ---------------------------------------------------------------------- input normalisation
@pytest.mark.parametrize("mode", ["exact", "hop", "conv"])
@pytest.mark.parametrize("norm", ["cmvn", "cmn"])
def test_stream_equals_whole_with_input_norm(net, wave, mode, norm):
    ex = EmbeddingFeatures(
        mode=mode,
        hop_frames=4,
        batch_segments=16,
        precision="fp32",
        input_norm=norm,
        input_norm_frames=37,
    ).with_net(net)
    whole = ex(wave)
    assert whole.shape == (ex.n_frames(len(wave)), 16)
    # the normalisation changes the embeddings
    raw = EmbeddingFeatures(mode=mode, hop_frames=4, precision="fp32").with_net(net)(wave)
    assert np.abs(raw - whole).max() > 1e-2
    for block in (999, 4097, 12345):  # odd sizes, blocks shorter than the context
        parts = list(ex.stream(wave[i : i + block] for i in range(0, len(wave), block)))
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


@pytest.mark.parametrize("norm,frames", [("cmvn", 100), ("cmvn", 7), ("cmn", 20)])
def test_input_norm_is_sliding_cmvn_of_the_logmel(wave, norm, frames):
    from kwsos.features import sliding_cmvn

    ex = EmbeddingFeatures(input_norm=norm, input_norm_frames=frames)
    mel = LogMel()(wave)
    expect = sliding_cmvn(mel, frames, variance=norm == "cmvn")
    np.testing.assert_allclose(ex.input_frames(wave), expect, atol=1e-5)
    for block in (1, 333, 4097):  # streamed log-Mel blocks of any size
        mel_blocks = (mel[i : i + block] for i in range(0, len(mel), block))
        got = np.concatenate(list(ex._stream_normalized(mel_blocks)))
        np.testing.assert_allclose(got, expect, atol=1e-5)
    if len(mel) <= frames:  # window covers the whole recording: plain per-recording CMN/CMVN
        centred = mel - mel.mean(0)
        scale = np.sqrt(mel.var(0) + 1e-8) if norm == "cmvn" else 1.0
        np.testing.assert_allclose(expect, centred / scale, atol=1e-4)
    assert ex.pad_value == 0.0
    assert EmbeddingFeatures().pad_value < -10  # raw log-Mel pads with silence


def test_input_norm_none_is_the_raw_logmel(wave):
    ex = EmbeddingFeatures()
    np.testing.assert_array_equal(ex.input_frames(wave), LogMel()(wave))


def test_input_norm_round_trips_and_old_dicts_load(net, wave):
    from kwsos.features import extractor_from_dict

    ex = EmbeddingFeatures(input_norm="cmvn", input_norm_frames=50, precision="fp32")
    d = ex.to_dict()
    assert d["input_norm"] == "cmvn" and d["input_norm_frames"] == 50
    again = extractor_from_dict(d)
    assert again.input_norm == "cmvn" and again.input_norm_frames == 50
    # a bank saved before the field existed: raw log-Mel, same embeddings as before
    old = {
        k: v
        for k, v in EmbeddingFeatures(precision="fp32").to_dict().items()
        if not k.startswith("input_norm")
    }
    legacy = extractor_from_dict(old)
    assert legacy.input_norm == "none"
    np.testing.assert_array_equal(
        legacy.with_net(net)(wave), EmbeddingFeatures(precision="fp32").with_net(net)(wave)
    )


def test_bad_input_norm_is_rejected():
    with pytest.raises(ValueError, match="input_norm"):
        EmbeddingFeatures(input_norm="zscore")
    with pytest.raises(ValueError, match="input_norm_frames"):
        EmbeddingFeatures(input_norm="cmvn", input_norm_frames=0)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_hfcc_frame_index_by_hand():
    ex = EmbeddingFeatures()
    # embedding frame j is centred at 256 j + 512 samples, HFCC frame i at 160 i + 320
    assert ex.hfcc_frame_index(np.array([0, 1, 2, 10])).tolist() == [1, 3, 4, 17]


@pytest.mark.parametrize("mode", ["conv", "hop"])
def test_fused_hfcc_is_the_weighted_concatenation_and_streams(net, wave, mode):
    from kwsos.features import get_extractor

    w = 0.3
    plain = EmbeddingFeatures(mode=mode, batch_segments=16, precision="fp32").with_net(net)
    fused = EmbeddingFeatures(
        mode=mode, batch_segments=16, precision="fp32", hfcc_weight=w
    ).with_net(net)
    e, h = plain(wave), get_extractor("hfcc")(wave)
    idx = np.minimum(fused.hfcc_frame_index(np.arange(len(e))), len(h) - 1)
    expect = np.concatenate([np.sqrt(1 - w) * _unit(e), np.sqrt(w) * _unit(h[idx])], axis=1)
    whole = fused(wave)
    assert whole.shape == (len(e), 16 + 39) and fused.dim == 16 + 39
    np.testing.assert_allclose(whole, expect, atol=1e-5)
    for block in (1000, 4097, 16000):
        parts = list(fused.stream(wave[i : i + block] for i in range(0, len(wave), block)))
        np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)
    # cosine distance of fused frames = (1 - w) * embedding distance + w * HFCC distance
    other = (wave[::-1] * 0.5).copy()
    f2, e2, h2 = fused(other), plain(other), get_extractor("hfcc")(other)
    n = min(len(whole), len(f2))
    d_fused = 1 - np.sum(whole[:n] * f2[:n], 1)
    d_e = 1 - np.sum(_unit(e)[:n] * _unit(e2)[:n], 1)
    d_h = 1 - np.sum(_unit(h[idx])[:n] * _unit(h2[np.minimum(idx, len(h2) - 1)])[:n], 1)
    np.testing.assert_allclose(d_fused, (1 - w) * d_e + w * d_h, atol=1e-5)


def test_hfcc_weight_round_trips_and_is_checked(net):
    ex = EmbeddingFeatures(hfcc_weight=0.25)
    assert (
        EmbeddingFeatures(**{k: v for k, v in ex.to_dict().items() if k != "name"}).hfcc_weight
        == 0.25
    )
    with pytest.raises(ValueError, match="hfcc_weight"):
        EmbeddingFeatures(hfcc_weight=1.5)
    with pytest.raises(ValueError, match="sliding"):
        EmbeddingFeatures(kind="sliding", mode="exact", hfcc_weight=0.5)
