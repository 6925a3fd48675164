"""Segmenting log-Mel frames for the temporal embedding network (Diss. 6.3.4): training
segments of a shot, inference segment starts, and the overlap average of segment embeddings."""

from __future__ import annotations

import numpy as np

__all__ = [
    "SILENCE_LOGMEL",
    "gather_segments",
    "inference_starts",
    "overlap_add",
    "overlap_average",
    "training_segments",
]

#: Log-Mel value of digital silence (``log(0 + 1e-8)``): the frames used for zero padding.
SILENCE_LOGMEL = float(np.log(1e-8))


def training_segments(
    frames: np.ndarray,
    *,
    segment_frames: int = 16,
    hop_frames: int = 3,
    pad_value: float = SILENCE_LOGMEL,
) -> np.ndarray:
    """Cut a shot's frames ``(n, n_mels)`` into training segments ``(n_seg, segment_frames, n_mels)``.

    Diss. 6.3.4: segments of ``L_seg = 0.25 s`` (16 frames of 256 samples) with a hop of
    ``L_seg / 5``; here the hop is counted in frames (3 frames = 48 ms for the paper's 50 ms).
    Segments start at frame 0 and are added until the last frame is covered; the tail of the last
    segment, and a shot shorter than one segment, are padded with silence frames.
    """
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2:
        raise ValueError(f"expected frames (n_frames, n_mels), got shape {frames.shape}")
    n = len(frames)
    n_seg = 1 + max(0, -(-(n - segment_frames) // hop_frames))
    total = (n_seg - 1) * hop_frames + segment_frames
    padded = np.full((max(total, n), frames.shape[1]), pad_value, np.float32)
    padded[:n] = frames
    idx = np.arange(n_seg)[:, None] * hop_frames + np.arange(segment_frames)[None, :]
    return padded[idx]


def inference_starts(n_frames: int, *, hop_frames: int = 1, segment_frames: int = 16) -> np.ndarray:
    """First frame (may be negative) of every inference segment of a recording of ``n_frames``.

    Diss. 6.3.4: the recording is padded by half a segment on both sides and segmented with a
    hop of one frame (256 samples), so segment ``j`` covers frames ``[j - 8, j + 8)`` and is
    centred on frame ``j``. With a larger ``hop_frames`` (fast path) segments start every
    ``hop_frames`` frames, plus one more if the last frame would otherwise be left uncovered.
    """
    if not 1 <= hop_frames <= segment_frames:
        raise ValueError(f"hop_frames must be in [1, {segment_frames}], got {hop_frames}")
    half = segment_frames // 2
    centres = list(range(0, max(n_frames, 1), hop_frames))
    if centres[-1] + segment_frames - half < n_frames:
        centres.append(centres[-1] + hop_frames)
    return np.asarray(centres, np.int64) - half


def gather_segments(
    frames: np.ndarray,
    starts: np.ndarray,
    *,
    offset: int = 0,
    segment_frames: int = 16,
    pad_value: float = SILENCE_LOGMEL,
) -> np.ndarray:
    """Segments ``(len(starts), segment_frames, n_mels)`` of ``frames``, where ``frames[0]`` is frame
    ``offset`` of the recording; frames outside ``frames`` are silence (zero padding)."""
    starts = np.asarray(starts, np.int64) - offset
    lo = min(0, int(starts.min()) if len(starts) else 0)
    hi = max(len(frames), int(starts.max()) + segment_frames if len(starts) else 0)
    padded = np.full((hi - lo, frames.shape[1]), pad_value, np.float32)
    padded[-lo : -lo + len(frames)] = frames
    idx = (starts - lo)[:, None] + np.arange(segment_frames)[None, :]
    return padded[idx]


def overlap_add(
    seg_emb: np.ndarray, starts: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count, over frames ``lo..hi-1``, of the segment embeddings covering each frame.

    ``seg_emb`` is ``(n_seg, T, D)`` with segment ``i`` covering frames ``starts[i] .. starts[i]+T-1``.
    Dividing the sum by the count gives the overlap average of Diss. Fig. 28.
    """
    n_seg, t_len, dim = seg_emb.shape
    acc = np.zeros((hi - lo, dim), np.float64)
    cnt = np.zeros(hi - lo, np.int64)
    frame = np.asarray(starts, np.int64)[:, None] + np.arange(t_len)[None, :]
    keep = (frame >= lo) & (frame < hi)
    np.add.at(acc, frame[keep] - lo, seg_emb[keep])
    np.add.at(cnt, frame[keep] - lo, 1)
    return acc, cnt


def overlap_average(seg_emb: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """Combine segment embeddings ``(n_seg, T, D)`` into one sequence ``(n_frames, D)`` by
    averaging, per frame, the embeddings of all segments covering it (Diss. 6.3.4, Fig. 28)."""
    acc, cnt = overlap_add(seg_emb, starts, 0, n_frames)
    if (cnt == 0).any():
        raise ValueError("some frames are not covered by any segment")
    return (acc / cnt[:, None]).astype(np.float32)
