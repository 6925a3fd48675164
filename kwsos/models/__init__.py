"""Embedding networks (PyTorch modules)."""

from kwsos.models.clip_resnet import ClipResNet
from kwsos.models.temporal_resnet import (
    ResidualBlock,
    SlidingWindowResNet,
    TemporalResNet,
    model_from_dict,
)

__all__ = [
    "ClipResNet",
    "ResidualBlock",
    "TemporalResNet",
    "SlidingWindowResNet",
    "model_from_dict",
]
