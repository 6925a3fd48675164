"""Subsequence DTW keyword detector (Diss. 6.3.6): every enrolled shot is a template searched
in the recording with :mod:`kwsos.backends.dtw`; candidates are the local minima of each
keyword's best-template cost curve; post-processing keeps the non-overlapping ones below the
threshold.

Detection (Diss. 6.3.6)
-----------------------
1. Per template ``k`` and end column ``j``: normalised cost and start as above.
2. Per keyword, at each column, the best (lowest cost) of its templates (ties: lowest template
   index).
3. Candidates are local minima of each keyword curve ``c``: ``c[j] < c[j-1]`` (or ``j`` is the
   first column) and ``c[j] <= c[j+1]`` (or ``j`` is the last column), ``c[j]`` finite and
   ``<= max_cost``.
4. Post-processing: keep ``cost <= threshold``; in order of increasing cost (ties: earlier start,
   then lower keyword index) each candidate keeps the longest contiguous part of
   ``[start, end]`` not occupied by detections kept before it (ties: the earlier part), which
   then becomes occupied; candidates with nothing left are dropped. Afterwards detections with
   ``end - start + 1 < min_duration_ratio * m_template`` are dropped (the frames they occupied
   are not released). Frame indices are inclusive.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from kwsos.backends.base import CANDIDATE_DTYPE, below_threshold, register_detector
from kwsos.backends.dtw import (
    DEFAULT_STEPS,
    Steps,
    _check_2d,
    _check_steps,
    _l2_normalise,
    _sdtw_fused,
)
from kwsos.hooks import Hook

__all__ = ["SubsequenceDTWDetector"]

logger = logging.getLogger(__name__)


def _blas_guard() -> Any:
    """BLAS on one thread while the DTW runs (:func:`kwsos.parallel.single_threaded_blas`: the
    kernels call many small BLAS products from numba threads, where OpenBLAS's own threads only
    spin). The limit is process-wide, so only the main thread sets it; worker threads of
    :func:`kwsos.parallel.ordered_map` run inside the limit their caller set."""
    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()
    from kwsos.parallel import single_threaded_blas

    return single_threaded_blas()


@register_detector("sdtw")
class SubsequenceDTWDetector:
    """Few-shot keyword detector: subsequence DTW against every enrolled shot (Diss. 6.3.6).

    Parameters
    ----------
    threshold : float
        Detection threshold on the length-normalised path cost (lower = better match).
    steps : sequence of (di, dj)
        DTW step sizes.
    block_frames : int
        Recording frames processed per internal block (memory ~
        ``4 * sum(m_k) * block_frames`` bytes for the cost block plus ``32 * K * block_frames``
        for the per-template results).
    min_duration_ratio : float
        Detections shorter than this fraction of the matched template's frames are dropped.

    Attributes
    ----------
    templates_ : ndarray, shape (sum m_k, D), float32
        L2-normalised template frames, stacked.
    offsets_ : ndarray, shape (K + 1,), int64
        Rows of template ``k`` are ``templates_[offsets_[k]:offsets_[k + 1]]``.
    template_lengths_ : ndarray, shape (K,), int64
    labels_ : ndarray, shape (K,), object
        Keyword of each template.
    keywords_ : ndarray, shape (n_keywords,), object
        Sorted unique keywords; candidate ``keyword`` fields index this.
    template_keyword_ : ndarray, shape (K,), int64
        Index into ``keywords_`` of each template.
    n_features_in_ : int

    Notes
    -----
    Streaming: the recording is re-blocked to ``block_frames`` columns; per block a fused numba
    kernel runs, in parallel over templates once a block has enough cells to pay for waking the
    thread pool: for each template and each tile of 256 frames it computes the float32
    similarities (a small BLAS product) and consumes them in the accumulation while they are in
    cache, so the (templates x frames) cost matrix is never written to memory. Between blocks only the DP state of the last ``max(dj)``
    columns of every template row and one column of each keyword curve (the look-ahead of the
    local-minimum test) are kept, so memory does not grow with the recording and a match that
    straddles a block border is found exactly once, as in one-block processing.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.3,
        steps: Steps = DEFAULT_STEPS,
        block_frames: int = 8192,
        min_duration_ratio: float = 0.5,
    ) -> None:
        self.threshold = threshold
        self.steps = steps
        self.block_frames = block_frames
        self.min_duration_ratio = min_duration_ratio

    # ---------------------------------------------------------------- fitting
    def fit(self, templates: Sequence[np.ndarray], labels: Sequence[str]) -> SubsequenceDTWDetector:
        """Store the enrolled shots.

        Parameters
        ----------
        templates : sequence of ndarray, each (m_k, D)
            One feature sequence per enrolled shot, ``m_k >= 1``.
        labels : sequence of str, length K
            Keyword of each template.

        Returns
        -------
        self
        """
        _check_steps(self.steps)
        if int(self.block_frames) < 1:
            raise ValueError(f"block_frames must be >= 1, got {self.block_frames}")
        templates = list(templates)
        labels = list(labels)
        if not templates:
            raise ValueError("fit needs at least one template")
        if len(templates) != len(labels):
            raise ValueError(
                f"got {len(templates)} templates but {len(labels)} labels; need one label each"
            )
        arrays = [_check_2d(t, f"templates[{i}]") for i, t in enumerate(templates)]
        dims = {a.shape[1] for a in arrays}
        if len(dims) != 1:
            raise ValueError(f"templates differ in feature dimension: {sorted(dims)}")
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        self.templates_ = _l2_normalise(np.concatenate(arrays, axis=0))
        self.offsets_ = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.template_lengths_ = lengths
        self.labels_ = np.array(labels, dtype=object)
        self.keywords_ = np.array(sorted(set(labels)), dtype=object)
        index = {kw: i for i, kw in enumerate(self.keywords_)}
        self.template_keyword_ = np.array([index[lab] for lab in labels], dtype=np.int64)
        self.n_features_in_ = int(arrays[0].shape[1])
        logger.debug(
            "fitted %d templates (%d frames) for %d keywords",
            len(arrays),
            int(lengths.sum()),
            len(self.keywords_),
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "templates_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    # ---------------------------------------------------------------- DTW over blocks
    def _iter_dtw(
        self, feature_blocks: Iterable[np.ndarray], hook: Hook | None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(first_column, norm (K, nb), start (K, nb))`` per internal block.

        Input blocks of any length are re-blocked to ``block_frames`` columns so that the BLAS
        products have the same shapes whatever the caller's block sizes.
        """
        self._check_fitted()
        di_arr, dj_arr = _check_steps(self.steps)
        block_frames = int(self.block_frames)
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {self.block_frames}")
        dim = self.n_features_in_
        n_rows = self.templates_.shape[0]
        n_templates = len(self.template_lengths_)
        n_prev = int(dj_arr.max())
        state_d = np.full((n_rows, n_prev), np.inf)
        state_l = np.zeros((n_rows, n_prev), dtype=np.int64)
        state_s = np.full((n_rows, n_prev), -1, dtype=np.int64)
        buf = np.empty((block_frames, dim), dtype=np.float32)
        fill = 0
        done = 0

        def process(frames: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
            nonlocal done
            nb = frames.shape[0]
            norm = np.empty((n_templates, nb))
            start = np.empty((n_templates, nb), dtype=np.int64)
            acc = np.empty((n_templates, nb))
            length = np.empty((n_templates, nb), dtype=np.int64)
            # Fused kernel: each template's similarities are computed tile by tile and consumed
            # by the accumulation while in cache (the kernel takes 1 - sim on the fly).
            _sdtw_fused(
                self.templates_, self.offsets_, _l2_normalise(frames), di_arr, dj_arr,
                state_d, state_l, state_s, done, norm, start, acc, length,
            )  # fmt: skip
            col0 = done
            done += nb
            if hook is not None:
                hook("dtw", completed=done, total=None)
            return col0, norm, start

        for b, block in enumerate(feature_blocks):
            block = _check_2d(block, f"feature block {b}", allow_empty=True)
            if block.shape[1] != dim:
                raise ValueError(
                    f"feature block {b} has {block.shape[1]} dims, the templates have {dim}"
                )
            pos = 0
            while pos < block.shape[0]:
                take = min(block_frames - fill, block.shape[0] - pos)
                buf[fill : fill + take] = block[pos : pos + take]
                fill += take
                pos += take
                if fill == block_frames:
                    yield process(buf)
                    fill = 0
        if fill:
            yield process(buf[:fill])

    def cost_curves(self, features: np.ndarray) -> np.ndarray:
        """Per-keyword match cost ``(n_keywords, n)`` at every end frame: the best template's
        normalised path cost (lower = better match; ``inf`` where no match ends). Holds the
        whole recording's DTW results in memory (for plots and diagnosis)."""
        norm, _ = self.search(features)
        return np.stack(
            [norm[self.template_keyword_ == k].min(axis=0) for k in range(len(self.keywords_))]
        )

    def search(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised cost and start of every template at every end column.

        Parameters
        ----------
        features : ndarray, shape (n, D)

        Returns
        -------
        norm_cost : ndarray, shape (K, n), float64
            ``inf`` where no path ends.
        start : ndarray, shape (K, n), int64
            -1 where no path ends.
        """
        self._check_fitted()
        features = _check_2d(features, "features", allow_empty=True)
        n = features.shape[0]
        n_templates = len(self.template_lengths_)
        norm = np.empty((n_templates, n))
        start = np.empty((n_templates, n), dtype=np.int64)
        with _blas_guard():
            for col0, bn, bs in self._iter_dtw([features], None):
                norm[:, col0 : col0 + bn.shape[1]] = bn
                start[:, col0 : col0 + bn.shape[1]] = bs
        return norm, start

    # ---------------------------------------------------------------- detection
    def candidates(
        self,
        feature_blocks: Iterable[np.ndarray],
        *,
        max_cost: float = np.inf,
        hook: Hook | None = None,
    ) -> np.ndarray:
        """Raw detections: local minima of each keyword's best-template cost curve.

        Streams over consecutive blocks of frames in bounded memory; the result does not depend
        on the block sizes (up to float32 rounding of the cost product).

        Parameters
        ----------
        feature_blocks : iterable of ndarray, each (n_b, D)
            Consecutive blocks of the recording (any lengths, empty blocks are skipped).
        max_cost : float
            Only minima with cost ``<= max_cost`` are returned.
        hook : callable, optional
            ``hook("dtw", completed=frames_done, total=None)`` after each internal block.

        Returns
        -------
        ndarray of CANDIDATE_DTYPE, shape (n_candidates,)
            Sorted by ``end`` then ``keyword``.
        """
        self._check_fitted()
        n_kw = len(self.keywords_)
        groups = [np.flatnonzero(self.template_keyword_ == w) for w in range(n_kw)]
        out: list[np.ndarray] = []
        # One column of look-ahead: the last column of a block is judged with the next block.
        pend: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        pend_left = np.full(n_kw, np.inf)
        pend_col = 0

        def emit(mask, cols, c, s, t) -> None:
            w_idx, j_idx = np.nonzero(mask)
            if w_idx.size:
                rec = np.empty(w_idx.size, dtype=CANDIDATE_DTYPE)
                rec["keyword"] = w_idx
                rec["start"] = s[w_idx, j_idx]
                rec["end"] = cols[j_idx]
                rec["cost"] = c[w_idx, j_idx]
                rec["template"] = t[w_idx, j_idx]
                out.append(rec)

        with _blas_guard():
            for col0, norm, start in self._iter_dtw(feature_blocks, hook):
                nb = norm.shape[1]
                kc = np.empty((n_kw, nb))
                ks = np.empty((n_kw, nb), dtype=np.int64)
                kt = np.empty((n_kw, nb), dtype=np.int64)
                for w, g in enumerate(groups):
                    best = np.argmin(norm[g], axis=0)  # first minimum = lowest template index
                    kc[w] = norm[g[best], np.arange(nb)]
                    ks[w] = start[g[best], np.arange(nb)]
                    kt[w] = g[best]
                if pend is None:
                    c, s, t = kc, ks, kt
                    first = col0
                else:
                    c = np.concatenate([pend[0][:, None], kc], axis=1)
                    s = np.concatenate([pend[1][:, None], ks], axis=1)
                    t = np.concatenate([pend[2][:, None], kt], axis=1)
                    first = pend_col
                left = np.concatenate([pend_left[:, None], c[:, :-1]], axis=1)
                cur = c[:, :-1]
                mask = (
                    (cur < left[:, :-1]) & (cur <= c[:, 1:]) & np.isfinite(cur) & (cur <= max_cost)
                )
                emit(mask, first + np.arange(c.shape[1] - 1), c, s, t)
                pend = (c[:, -1].copy(), s[:, -1].copy(), t[:, -1].copy())
                pend_left = left[:, -1].copy()
                pend_col = first + c.shape[1] - 1
        if pend is not None:
            c = pend[0][:, None]
            mask = (c < pend_left[:, None]) & np.isfinite(c) & (c <= max_cost)
            emit(mask, np.array([pend_col]), c, pend[1][:, None], pend[2][:, None])
        if not out:
            return np.empty(0, dtype=CANDIDATE_DTYPE)
        cand = np.concatenate(out)
        return cand[np.lexsort((cand["keyword"], cand["end"]))]

    def postprocess(self, candidates: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Threshold, overlap resolution and minimum-duration filter (Diss. 6.3.6).

        Parameters
        ----------
        candidates : ndarray of CANDIDATE_DTYPE
            From :meth:`candidates`.
        threshold : float or ndarray of shape (n_keywords,), optional
            Keep ``cost <= threshold`` (per keyword: ``threshold[keyword]``, indexed like
            ``keywords_``); default ``self.threshold``.

        Returns
        -------
        ndarray of CANDIDATE_DTYPE
            Non-overlapping detections sorted by start (then keyword).
        """
        self._check_fitted()
        candidates = np.asarray(candidates)
        if candidates.dtype != CANDIDATE_DTYPE:
            raise ValueError(f"candidates must have dtype CANDIDATE_DTYPE, got {candidates.dtype}")
        if candidates.ndim != 1:
            raise ValueError(f"candidates must be 1-D, got shape {candidates.shape}")
        thr = self.threshold if threshold is None else threshold
        cand = candidates[below_threshold(candidates, thr, len(self.keywords_))]
        if cand.size and (
            cand["template"].min() < 0 or cand["template"].max() >= len(self.template_lengths_)
        ):
            raise ValueError("candidate template index out of range for this detector")
        cand = cand[np.lexsort((cand["keyword"], cand["start"], cand["cost"]))]
        # Kept intervals are disjoint, so sorting by start also sorts them by end.
        starts: list[int] = []
        ends: list[int] = []
        kept: list[np.void] = []
        for rec in cand:
            s, e = int(rec["start"]), int(rec["end"])
            pos = bisect.bisect_left(ends, s)
            best_s, best_e = 0, -1
            cur = s
            k = pos
            while k < len(starts) and starts[k] <= e:
                if starts[k] > cur and starts[k] - cur > best_e - best_s + 1:
                    best_s, best_e = cur, starts[k] - 1
                cur = max(cur, ends[k] + 1)
                k += 1
            if cur <= e and e - cur + 1 > best_e - best_s + 1:
                best_s, best_e = cur, e
            if best_e < best_s:
                continue
            ins = bisect.bisect_left(starts, best_s)
            starts.insert(ins, best_s)
            ends.insert(ins, best_e)
            new = rec.copy()
            new["start"] = best_s
            new["end"] = best_e
            kept.append(new)
        res = np.array(kept, dtype=CANDIDATE_DTYPE) if kept else np.empty(0, CANDIDATE_DTYPE)
        dur = res["end"] - res["start"] + 1
        res = res[dur >= self.min_duration_ratio * self.template_lengths_[res["template"]]]
        return res[np.lexsort((res["keyword"], res["start"]))]

    def detect(
        self, feature_blocks: Iterable[np.ndarray], *, hook: Hook | None = None
    ) -> np.ndarray:
        """Detections for a stream of feature blocks: ``postprocess(candidates(...))``.

        Parameters
        ----------
        feature_blocks : iterable of ndarray, each (n_b, D)
        hook : callable, optional
            Progress callback, see :meth:`candidates`.

        Returns
        -------
        ndarray of CANDIDATE_DTYPE
            Sorted by start; frames are inclusive indices into the recording.
        """
        return self.postprocess(self.candidates(feature_blocks, max_cost=self.threshold, hook=hook))
