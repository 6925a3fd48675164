"""Frame features: the extractor interface and registry (:mod:`~kwsos.features.base`), the
hand-crafted spectral features (:mod:`~kwsos.features.spectral`) and log-Mel segmenting for the
temporal embedding network (:mod:`~kwsos.features.segments`). Learned features register
themselves from :mod:`kwsos.embeddings.temporal` (imported only when asked for)."""

from kwsos.features.base import (
    FeatureExtractor,
    available_extractors,
    extractor_from_dict,
    get_extractor,
    register_extractor,
)
from kwsos.features.segments import (
    SILENCE_LOGMEL,
    gather_segments,
    inference_starts,
    overlap_add,
    overlap_average,
    training_segments,
)
from kwsos.features.spectral import (
    HFCC,
    MFCC,
    LogMel,
    deltas,
    erb_hz,
    hfcc_filterbank,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    sliding_cmvn,
)

__all__ = [
    "FeatureExtractor",
    "HFCC",
    "LogMel",
    "MFCC",
    "SILENCE_LOGMEL",
    "available_extractors",
    "deltas",
    "erb_hz",
    "extractor_from_dict",
    "gather_segments",
    "get_extractor",
    "hfcc_filterbank",
    "hz_to_mel",
    "inference_starts",
    "mel_filterbank",
    "mel_to_hz",
    "overlap_add",
    "overlap_average",
    "register_extractor",
    "sliding_cmvn",
    "training_segments",
]
