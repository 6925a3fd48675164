"""Embedding networks (PyTorch modules)."""

from kwsos.models.temporal_resnet import (
    ResidualBlock,
    SlidingWindowResNet,
    TemporalResNet,
    model_from_dict,
)

__all__ = ["ResidualBlock", "TemporalResNet", "SlidingWindowResNet", "model_from_dict"]
