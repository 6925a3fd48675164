"""Sliding-window keyword detector: the vector-embedding baseline of Diss. 6.3.7.

Every inference segment (one per frame, centred on it) has one embedding vector. Its cost for
keyword ``k`` is the cosine distance to the keyword's class centre of the trained AdaCos head;
a frame is positive when the cost is at most the threshold; the Boolean sequence is median
filtered with a length equal to the mean number of frames of the keyword's shots (nearest odd
number); every positive run becomes a detection whose boundaries are moved out by half a
segment (``-L_seg/2``, ``+L_seg/2``) because a segment centred on frame ``j`` covers frames
``j - L/2 .. j + L/2 - 1``.

The interface matches :class:`~kwsos.backends.dtw.SubsequenceDTWDetector` (``fit``,
``candidates``, ``postprocess``, ``keywords_``), so the keyword spotter, ``tune`` and the CLI use
either. Unlike the DTW detector, the candidates are per-frame costs, so memory grows with the
recording length (one record per frame and keyword below ``max_cost``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.ndimage import median_filter

from kwsos.backends.dtw import CANDIDATE_DTYPE, below_threshold

__all__ = ["SlidingWindowDetector"]


class SlidingWindowDetector:
    """Threshold + median filter on per-segment cosine distances to keyword centres.

    Parameters
    ----------
    threshold : float
        Maximum cosine distance (``1 - cos``; lower = stricter).
    segment_frames : int
        Segment length in frames (the ``+-L_seg/2`` box extension).
    """

    def __init__(self, threshold: float = 0.5, *, segment_frames: int = 16) -> None:
        self.threshold = threshold
        self.segment_frames = segment_frames

    def fit(
        self, centres: Sequence[np.ndarray], labels: Sequence[str], median_frames: Sequence[int]
    ) -> SlidingWindowDetector:
        """``centres[i]`` ``(D,)`` or ``(1, D)`` is the class centre of keyword ``labels[i]``;
        ``median_frames[i]`` the mean frame count of its shots (rounded to the nearest odd
        number here)."""
        if not len(centres) or len(centres) != len(labels) or len(labels) != len(median_frames):
            raise ValueError("centres, labels and median_frames must be non-empty and aligned")
        c = np.stack([np.asarray(x, np.float64).reshape(-1) for x in centres])
        self.centres_ = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        self.keywords_ = np.array(labels, dtype=object)
        m = np.maximum(np.rint(np.asarray(median_frames, np.float64)).astype(np.int64), 1)
        self.median_frames_ = np.where(m % 2 == 0, m + 1, m)
        self.template_lengths_ = self.median_frames_
        self.template_keyword_ = np.arange(len(labels))
        return self

    def costs(self, features: np.ndarray) -> np.ndarray:
        """``(n, D)`` segment embeddings -> ``(n, n_keywords)`` cosine distances."""
        f = np.asarray(features, np.float64)
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return 1.0 - f @ self.centres_.T

    def candidates(
        self, feature_blocks: Iterable[np.ndarray], *, max_cost: float = np.inf, hook=None
    ) -> np.ndarray:
        """Every (frame, keyword) with cost ``<= max_cost``, as ``CANDIDATE_DTYPE`` records with
        ``start == end == frame``."""
        out, col0 = [], 0
        for block in feature_blocks:
            if not len(block):
                continue
            c = self.costs(block)
            j, k = np.nonzero(c <= max_cost)
            rec = np.empty(len(j), CANDIDATE_DTYPE)
            rec["keyword"], rec["start"], rec["end"] = k, col0 + j, col0 + j
            rec["cost"], rec["template"] = c[j, k], k
            out.append(rec)
            col0 += len(block)
            if hook is not None:
                hook("sliding", completed=col0, total=None)
        return np.concatenate(out) if out else np.empty(0, CANDIDATE_DTYPE)

    def postprocess(self, candidates: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Threshold (one float or one per keyword), median filter, positive runs -> detections
        (inclusive frames), sorted."""
        thr = self.threshold if threshold is None else threshold
        cand = np.asarray(candidates)
        cand = cand[below_threshold(cand, thr, len(self.keywords_))]
        thr_k = np.broadcast_to(np.asarray(thr, np.float64), (len(self.keywords_),))
        half = self.segment_frames // 2
        dets = []
        for k in np.unique(cand["keyword"]):
            ck = cand[cand["keyword"] == k]
            m = int(self.median_frames_[k])
            n = int(ck["end"].max()) + m + 1
            pos = np.zeros(n, np.uint8)
            cost = np.full(n, np.inf)
            pos[ck["start"]] = 1
            cost[ck["start"]] = ck["cost"]
            filt = median_filter(pos, size=m, mode="constant", cval=0) > 0
            edges = np.diff(np.concatenate([[0], filt.astype(np.int8), [0]]))
            for a, b in zip(
                np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True
            ):
                rec = np.zeros(1, CANDIDATE_DTYPE)
                rec["keyword"], rec["template"] = k, k
                rec["start"], rec["end"] = max(a - half, 0), b + half - 1
                best = cost[a : b + 1].min()
                rec["cost"] = best if np.isfinite(best) else thr_k[k]
                dets.append(rec)
        if not dets:
            return np.empty(0, CANDIDATE_DTYPE)
        res = np.concatenate(dets)
        return res[np.lexsort((res["keyword"], res["start"]))]

    def detect(self, feature_blocks: Iterable[np.ndarray], *, hook=None) -> np.ndarray:
        return self.postprocess(self.candidates(feature_blocks, max_cost=self.threshold, hook=hook))
