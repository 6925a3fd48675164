import torch

from kwsos.models import SlidingWindowResNet, TemporalResNet, model_from_dict


def test_table30_shapes_and_size():
    net = TemporalResNet().eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 0.6e6 < n_params < 0.8e6  # "about 0.7 M parameters" (Diss. Table 30)
    with torch.no_grad():
        assert net(torch.randn(3, 16, 64)).shape == (3, 16, 128)
        # fully convolutional in time: any length works
        assert net(torch.randn(1, 53, 64)).shape == (1, 53, 128)


def test_time_axis_is_kept_locally():
    """Changing input frame t only changes outputs within the receptive field (+-16 frames)."""
    torch.manual_seed(0)
    net = TemporalResNet(channels=(4, 4, 8, 8)).eval()
    x = torch.randn(1, 60, 64)
    y = x.clone()
    y[0, 30] += 5.0
    with torch.no_grad():
        d = (net(x) - net(y)).abs().amax(dim=2)[0]
    assert d[30] > 0
    assert d[: 30 - 16].max() == 0 and d[30 + 17 :].max() == 0


def test_sliding_window_variant_gives_one_vector_per_segment():
    net = SlidingWindowResNet().eval()
    with torch.no_grad():
        assert net(torch.randn(5, 16, 64)).shape == (5, 128)


def test_model_from_dict_round_trip():
    net = TemporalResNet(channels=(4, 8, 8, 16), dim=32)
    again = model_from_dict(net.to_dict())
    again.load_state_dict(net.state_dict())
    assert again.to_dict() == net.to_dict()
