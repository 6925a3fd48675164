"""Embedding networks (PyTorch modules)."""

from kwsos.models.asd import LogMelResNet, TwoBranchNet, asd_model_from_dict
from kwsos.models.autoencoder import AutoencoderDetector, DcaseAutoencoder
from kwsos.models.clip_resnet import ClipResNet
from kwsos.models.temporal_resnet import (
    ResidualBlock,
    SlidingWindowResNet,
    TemporalResNet,
    model_from_dict,
)

__all__ = [
    "AutoencoderDetector",
    "ClipResNet",
    "DcaseAutoencoder",
    "LogMelResNet",
    "TwoBranchNet",
    "asd_model_from_dict",
    "ResidualBlock",
    "TemporalResNet",
    "SlidingWindowResNet",
    "model_from_dict",
]
