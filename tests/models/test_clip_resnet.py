import torch

from kwsos.models import ClipResNet, model_from_dict


def test_table4_shapes_size_and_any_length():
    net = ClipResNet(n_mels=128).eval()  # Diss. Table 4: 128 Mel bins, 16..128 channels
    with torch.no_grad():
        assert net(torch.randn(2, 313, 128)).shape == (2, 128)
        assert net(torch.randn(1, 40, 128)).shape == (1, 128)  # time is max-pooled
    assert net.embed.in_features == 4 * 128  # Table 4: flatten 4 x 128 = 512
    n_params = sum(p.numel() for p in net.parameters())
    assert 0.5e6 < n_params < 1.0e6


def test_round_trip_through_model_from_dict():
    net = ClipResNet(32, 16, channels=(4, 8), blocks_per_stage=1, temporal_norm=True)
    clone = model_from_dict(net.to_dict())
    assert isinstance(clone, ClipResNet) and clone.to_dict() == net.to_dict()
    clone.load_state_dict(net.state_dict())
    x = torch.randn(3, 20, 32)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(x), net.eval()(x))


def test_bad_input_shape():
    import pytest

    with pytest.raises(ValueError, match="expected input"):
        ClipResNet(32)(torch.randn(2, 10, 64))
