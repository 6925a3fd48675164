"""Sliding-window keyword detector: the vector-embedding baseline of Diss. 6.3.7.

Every inference segment (one per frame, centred on it) has one embedding vector. Its cost for
keyword ``k`` is the cosine distance to the keyword's class centre of the trained AdaCos head;
a frame is positive when the cost is at most the threshold; the Boolean sequence is median
filtered with a length equal to the mean number of frames of the keyword's shots (nearest odd
number); every positive run becomes a detection whose boundaries are moved out by half a
segment (``-L_seg/2``, ``+L_seg/2``) because a segment centred on frame ``j`` covers frames
``j - L/2 .. j + L/2 - 1``.

It is a :class:`~kwsos.backends.base.Detector` like
:class:`~kwsos.backends.sdtw.SubsequenceDTWDetector`, so the keyword spotter, threshold tuning
and the CLI use either without special cases. Unlike the DTW detector, the candidates are
per-frame costs, so memory grows with the recording length (one record per frame and keyword
below ``max_cost``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.ndimage import median_filter

from kwsos.backends.base import CANDIDATE_DTYPE, below_threshold, register_detector
from kwsos.hooks import Hook

__all__ = ["SlidingWindowDetector"]


@register_detector("sliding")
class SlidingWindowDetector:
    """Threshold + median filter on per-segment cosine distances to keyword centres.

    Parameters
    ----------
    threshold : float
        Maximum cosine distance (``1 - cos``; lower = stricter).
    segment_frames : int
        Segment length in frames (the ``+-L_seg/2`` box extension).
    centres : mapping keyword -> (D,) array, optional
        The class centre of every keyword (the paper: the trained AdaCos head's centres, which
        the keyword spotter passes from the learned features' training record). Keywords
        without one get the L2-normalised mean of their templates' normalised frames.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        segment_frames: int = 16,
        centres: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.threshold = threshold
        self.segment_frames = segment_frames
        self.centres = centres

    def fit(self, templates: Sequence[np.ndarray], labels: Sequence[str]) -> SlidingWindowDetector:
        """``templates[i]`` ``(m_i, D)`` are the segment embeddings of a shot of keyword
        ``labels[i]``; the median filter of a keyword is the mean ``m_i`` of its shots (rounded
        to the nearest odd number)."""
        templates, labels = list(templates), list(labels)
        if not templates or len(templates) != len(labels):
            raise ValueError("templates and labels must be non-empty and aligned")
        keywords = sorted(set(labels))
        given = dict(self.centres or {})
        rows, frames = [], []
        for kw in keywords:
            mine = [
                np.asarray(t, np.float64)
                for t, lab in zip(templates, labels, strict=True)
                if lab == kw
            ]
            frames.append(np.mean([len(t) for t in mine]))
            if kw in given:
                rows.append(np.asarray(given[kw], np.float64).reshape(-1))
            else:
                unit = [
                    t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12) for t in mine
                ]
                rows.append(np.concatenate(unit).mean(axis=0))
        c = np.stack(rows)
        self.centres_ = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        self.keywords_ = np.array(keywords, dtype=object)
        m = np.maximum(np.rint(np.asarray(frames, np.float64)).astype(np.int64), 1)
        self.median_frames_ = np.where(m % 2 == 0, m + 1, m)
        self.template_lengths_ = self.median_frames_
        self.template_keyword_ = np.arange(len(keywords))
        return self

    def cost_curves(self, features: np.ndarray) -> np.ndarray:
        """``(n_keywords, n)`` cosine distance of every frame's segment to each keyword centre
        (lower = better match)."""
        return self.costs(features).T

    def costs(self, features: np.ndarray) -> np.ndarray:
        """``(n, D)`` segment embeddings -> ``(n, n_keywords)`` cosine distances."""
        f = np.asarray(features, np.float64)
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return 1.0 - f @ self.centres_.T

    def candidates(
        self,
        feature_blocks: Iterable[np.ndarray],
        *,
        max_cost: float = np.inf,
        hook: Hook | None = None,
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

    def detect(
        self, feature_blocks: Iterable[np.ndarray], *, hook: Hook | None = None
    ) -> np.ndarray:
        return self.postprocess(self.candidates(feature_blocks, max_cost=self.threshold, hook=hook))
