"""Subsequence DTW: public functions and the private numba kernels (Diss. 6.3.6).

A keyword template (the query, one enrolled shot) ``Q`` of shape ``(m, D)`` is aligned with every
sub-sequence of a recording ``X`` of shape ``(n, D)``.

Exact semantics
---------------
* Cost ``C[i, j] = 1 - cos(Q_i, X_j)``, computed in float32 as one matrix product of L2-normalised
  rows (a zero row keeps norm 1, so its cosine with anything is 0 and its cost 1).
* Steps ``(di, dj)`` advance ``di`` template rows and ``dj`` recording columns; both must be
  >= 1. The default is ``((1, 1), (1, 2), (2, 1))`` (Diss. 6.3.6); any subset may be passed.
* Free start: ``D[0, j] = C[0, j]``, ``L[0, j] = 1``, ``S[0, j] = j`` for every column ``j``.
* For ``i >= 1``: every step ``(di, dj)``, in the given order, with ``i - di >= 0`` and
  ``j - dj >= 0`` proposes the predecessor ``p = (i - di, j - dj)`` with the normalised value
  ``(D[p] + C[i, j]) / (L[p] + 1)``. The candidate with the smallest value wins (strict ``<``, so
  on ties the earlier step in the list wins) and ``D[i, j] = D[p] + C[i, j]``,
  ``L[i, j] = L[p] + 1``, ``S[i, j] = S[p]``. Where no predecessor exists, or all are
  unreachable, ``D = inf``, ``L = 0``, ``S = -1``. (The kernels compare ``a / la < b / lb`` as
  ``a * lb < b * la``, the same test without a division, up to float rounding.) This is the
  length-normalised greedy selection of Anguera & Ferrarons (2013), "memory-efficient
  subsequence DTW"; ``L`` counts the cells on the path.
* Free end: for end column ``j`` the normalised cost is ``D[m-1, j] / L[m-1, j]`` and the start
  column ``S[m-1, j]``; ``inf`` and ``-1`` where no path reaches ``(m - 1, j)``.
* Accumulation is in float64 (the float32 cost is widened cell by cell).
* Memory: the kernels keep, per template, only the rows ``i - 1 ... i - max(di)`` of the block
  being processed plus the last ``max(dj)`` columns of every row of the previous block
  (never an ``(m, n)`` accumulated matrix, never a backtrace). Because that carried column state
  is exactly what the recursion needs, processing a recording block by block gives the same
  accumulated values as processing it in one piece; only the BLAS cost product may round
  differently for different block shapes.

The detector built on these functions is :class:`kwsos.backends.sdtw.SubsequenceDTWDetector`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from kwsos.backends.base import DEFAULT_STEPS, Steps

__all__ = [
    "DEFAULT_STEPS",
    "cosine_cost",
    "dba_template",
    "max_span",
    "subsequence_dtw",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------
# The row kernels below update one template row: ``c`` is the local cost (float64) of the row,
# ``cd, cl, cs`` the new row's D, L, S and ``pXd, pXl, pXs`` the predecessor row of step X,
# shifted so that index j is the predecessor of column j. Unreachable cells hold
# (inf, 0, -1). Candidates are listed in step order; the strict < keeps the earliest on ties.
# One, two and three candidates are unrolled (several times faster than a loop over the
# steps), more use the generic loop. Selects instead of branches: which step wins is
# data-dependent and mispredicted half of the time (5x slower with branches).
# error_model="numpy" drops numba's per-division zero check (L + 1 >= 1 always), which
# halves the time of the multi-step rows.
@njit(cache=True, error_model="numpy")
def _row1(c, cd, cl, cs, p0d, p0l, p0s):
    for j in range(c.shape[0]):
        prev = p0d[j]
        ln = p0l[j] + 1
        cd[j] = prev + c[j]
        cl[j] = ln if prev < np.inf else 0
        cs[j] = p0s[j]


@njit(cache=True, error_model="numpy")
def _row2(c, cd, cl, cs, p0d, p0l, p0s, p1d, p1l, p1s):
    # All loads first and conditional expressions on computed values only, so that LLVM emits
    # selects: which step wins is data-dependent and unpredictable for the branch predictor.
    # (d1 / l1 < bd / bl) is evaluated as d1 * bl < bd * l1 (lengths are >= 1): no division.
    for j in range(c.shape[0]):
        cj = c[j]
        bd = p0d[j] + cj
        bl = p0l[j] + 1
        bs = p0s[j]
        d1 = p1d[j] + cj
        l1 = p1l[j] + 1
        s1 = p1s[j]
        t = d1 * bl < bd * l1
        bd = d1 if t else bd
        bl = l1 if t else bl
        bs = s1 if t else bs
        ok = bd < np.inf
        cd[j] = bd if ok else np.inf
        cl[j] = bl if ok else 0
        cs[j] = bs if ok else -1


@njit(cache=True, error_model="numpy")
def _row3(c, cd, cl, cs, p0d, p0l, p0s, p1d, p1l, p1s, p2d, p2l, p2s):
    # (d1 / l1 < bd / bl) is evaluated as d1 * bl < bd * l1 (lengths are >= 1): no division
    # in the inner loop, which is what makes this row ~2x faster than the obvious form.
    for j in range(c.shape[0]):
        cj = c[j]
        bd = p0d[j] + cj
        bl = p0l[j] + 1
        bs = p0s[j]
        d1 = p1d[j] + cj
        l1 = p1l[j] + 1
        s1 = p1s[j]
        d2 = p2d[j] + cj
        l2 = p2l[j] + 1
        s2 = p2s[j]
        t = d1 * bl < bd * l1
        bd = d1 if t else bd
        bl = l1 if t else bl
        bs = s1 if t else bs
        t = d2 * bl < bd * l2
        bd = d2 if t else bd
        bl = l2 if t else bl
        bs = s2 if t else bs
        ok = bd < np.inf
        cd[j] = bd if ok else np.inf
        cl[j] = bl if ok else 0
        cs[j] = bs if ok else -1


@njit(cache=True, error_model="numpy")
def _row_any(c, cd, cl, cs, ring_d, ring_l, ring_s, prow, pcol, n_valid):
    for j in range(c.shape[0]):
        best = np.inf
        bd = np.inf
        bl = 0
        bs = -1
        for s in range(n_valid):
            r = prow[s]
            q = pcol[s] + j
            d = ring_d[r, q] + c[j]
            ln = ring_l[r, q] + 1
            st = ring_s[r, q]
            v = d / ln
            t = v < best
            best = v if t else best
            bd = d if t else bd
            bl = ln if t else bl
            bs = st if t else bs
        cd[j], cl[j], cs[j] = bd, bl, bs


@njit(cache=True, error_model="numpy", nogil=True)
def _sdtw_one_template(
    cost, cr0, r0, m, steps_di, steps_dj, n_ring, state_d, state_l, state_s, col0, negate,
    out_norm, out_start, out_acc, out_len, k, oc0,
):  # fmt: skip
    """Advance the subsequence DTW of template ``k`` by one block of ``cost.shape[1]`` columns.

    The template's cost rows are ``cost[cr0:cr0+m]``, its DP state rows ``state_*[r0:r0+m]``;
    the results go to columns ``oc0:oc0+nb`` of row ``k`` of ``out_*``. With ``negate`` the
    array holds similarities and the cost is ``1 - cost`` (in the array's precision, as
    :func:`cosine_cost` computes it).
    """
    nb = cost.shape[1]
    n_prev = state_d.shape[1]
    n_steps = steps_di.shape[0]
    width = n_prev + nb
    one = cost.dtype.type(1.0)
    # Ring of the last max(di) + 1 rows, each prefixed by the n_prev carried columns of that
    # row from the previous block.
    ring_d = np.empty((n_ring, width), dtype=np.float64)
    ring_l = np.empty((n_ring, width), dtype=np.int64)
    ring_s = np.empty((n_ring, width), dtype=np.int64)
    c = np.empty(nb, dtype=np.float64)
    prow = np.empty(n_steps, dtype=np.int64)
    pcol = np.empty(n_steps, dtype=np.int64)
    for i in range(m):
        ri = i % n_ring
        for q in range(n_prev):
            ring_d[ri, q] = state_d[r0 + i, q]
            ring_l[ri, q] = state_l[r0 + i, q]
            ring_s[ri, q] = state_s[r0 + i, q]
        if negate:
            for j in range(nb):
                c[j] = np.float64(one - cost[cr0 + i, j])
        else:
            for j in range(nb):
                c[j] = np.float64(cost[cr0 + i, j])
        cd = ring_d[ri, n_prev:]
        cl = ring_l[ri, n_prev:]
        cs = ring_s[ri, n_prev:]
        n_valid = 0
        if i > 0:
            for s in range(n_steps):
                if steps_di[s] <= i:
                    prow[n_valid] = (i - steps_di[s]) % n_ring
                    pcol[n_valid] = n_prev - steps_dj[s]
                    n_valid += 1
        if i == 0:
            for j in range(nb):
                cd[j] = c[j]
                cl[j] = 1
                cs[j] = col0 + j
        elif n_valid == 0:
            cd[:] = np.inf
            cl[:] = 0
            cs[:] = -1
        elif n_valid == 1:
            a0, b0 = prow[0], pcol[0]
            _row1(c, cd, cl, cs, ring_d[a0, b0:], ring_l[a0, b0:], ring_s[a0, b0:])
        elif n_valid == 2:
            a0, b0, a1, b1 = prow[0], pcol[0], prow[1], pcol[1]
            _row2(
                c, cd, cl, cs,
                ring_d[a0, b0:], ring_l[a0, b0:], ring_s[a0, b0:],
                ring_d[a1, b1:], ring_l[a1, b1:], ring_s[a1, b1:],
            )  # fmt: skip
        elif n_valid == 3:
            a0, b0, a1, b1, a2, b2 = prow[0], pcol[0], prow[1], pcol[1], prow[2], pcol[2]
            _row3(
                c, cd, cl, cs,
                ring_d[a0, b0:], ring_l[a0, b0:], ring_s[a0, b0:],
                ring_d[a1, b1:], ring_l[a1, b1:], ring_s[a1, b1:],
                ring_d[a2, b2:], ring_l[a2, b2:], ring_s[a2, b2:],
            )  # fmt: skip
        else:
            _row_any(c, cd, cl, cs, ring_d, ring_l, ring_s, prow, pcol, n_valid)
        for q in range(n_prev):
            state_d[r0 + i, q] = ring_d[ri, nb + q]
            state_l[r0 + i, q] = ring_l[ri, nb + q]
            state_s[r0 + i, q] = ring_s[ri, nb + q]
    last = (m - 1) % n_ring
    for j in range(nb):
        acc = ring_d[last, n_prev + j]
        length = ring_l[last, n_prev + j]
        out_acc[k, oc0 + j] = acc
        out_len[k, oc0 + j] = length
        out_start[k, oc0 + j] = ring_s[last, n_prev + j]
        if length > 0 and acc < np.inf:
            out_norm[k, oc0 + j] = acc / length
        else:
            out_norm[k, oc0 + j] = np.inf


@njit(cache=True, parallel=True, error_model="numpy", nogil=True)
def _sdtw_block_parallel(
    cost, offsets, steps_di, steps_dj, state_d, state_l, state_s, col0, negate,
    out_norm, out_start, out_acc, out_len,
):  # fmt: skip
    """Advance all stacked templates by one block of columns, in parallel over templates.

    cost : (sum m_k, nb) float32/float64, rows of template k are offsets[k]:offsets[k+1];
        similarities instead of costs when ``negate``.
    state_* : (sum m_k, P) last P = max(dj) columns of D, L, S before this block (updated).
    col0 : global index of the first column of the block (for the free start).
    out_* : (K, nb) results for the last template row.
    """
    n_ring = steps_di.max() + 1
    for k in prange(offsets.shape[0] - 1):
        _sdtw_one_template(
            cost, offsets[k], offsets[k], offsets[k + 1] - offsets[k], steps_di, steps_dj,
            n_ring, state_d, state_l, state_s, col0, negate, out_norm, out_start, out_acc,
            out_len, k, 0,
        )  # fmt: skip


@njit(cache=True, error_model="numpy", nogil=True)
def _sdtw_block_serial(
    cost, offsets, steps_di, steps_dj, state_d, state_l, state_s, col0, negate,
    out_norm, out_start, out_acc, out_len,
):  # fmt: skip
    """Same as :func:`_sdtw_block_parallel` on one thread (no thread-pool wake-up cost)."""
    n_ring = steps_di.max() + 1
    for k in range(offsets.shape[0] - 1):
        _sdtw_one_template(
            cost, offsets[k], offsets[k], offsets[k + 1] - offsets[k], steps_di, steps_dj,
            n_ring, state_d, state_l, state_s, col0, negate, out_norm, out_start, out_acc,
            out_len, k, 0,
        )  # fmt: skip


# The fused kernels below never hold a whole cost matrix: per template and tile of recording
# columns they compute the similarities with one small BLAS product and consume them while they
# are in cache. Their ring keeps, instead of L and S, M = L + 1 as float64 (the comparison needs
# L + 1 as a float anyway: three conversions and two additions fewer per cell) and S as int32
# relative to the tile (exact: a path spans at most a few hundred columns). Unreachable cells
# are only marked by D = inf: M stays >= 1 so that inf * M is inf, never nan, and an infinite
# candidate never beats a finite one; L = 0 and S = -1 are written where results and the carried
# state leave the kernel. On finite values every comparison is the one of the cost-matrix kernel
# above, so the results are identical (tested).
@njit(cache=True, error_model="numpy", inline="always")
def _frow2(sim, one, cd, cm, cs, p0d, p0m, p0s, p1d, p1m, p1s):
    for j in range(cd.shape[0]):
        cj = np.float64(one - sim[j])
        bd = p0d[j] + cj
        bm = p0m[j]
        bs = p0s[j]
        d1 = p1d[j] + cj
        m1 = p1m[j]
        s1 = p1s[j]
        t = d1 * bm < bd * m1
        cd[j] = d1 if t else bd
        cm[j] = (m1 if t else bm) + 1.0
        cs[j] = s1 if t else bs


@njit(cache=True, error_model="numpy", inline="always")
def _frow3(sim, one, cd, cm, cs, p0d, p0m, p0s, p1d, p1m, p1s, p2d, p2m, p2s):
    # all loads before the selects (a load under a select stops LLVM from vectorising)
    for j in range(cd.shape[0]):
        cj = np.float64(one - sim[j])
        bd = p0d[j] + cj
        bm = p0m[j]
        bs = p0s[j]
        d1 = p1d[j] + cj
        m1 = p1m[j]
        s1 = p1s[j]
        d2 = p2d[j] + cj
        m2 = p2m[j]
        s2 = p2s[j]
        t = d1 * bm < bd * m1
        bd = d1 if t else bd
        bm = m1 if t else bm
        bs = s1 if t else bs
        t = d2 * bm < bd * m2
        cd[j] = d2 if t else bd
        cm[j] = (m2 if t else bm) + 1.0
        cs[j] = s2 if t else bs


@njit(cache=True, error_model="numpy", nogil=True)
def _fused_diagonal(
    templates, r0, m, tiles, nb, state_d, state_l, state_s, col0,
    out_norm, out_start, out_acc, out_len, k,
):  # fmt: skip
    """Template ``k`` with the single step (1, 1): every path is a diagonal, so the recursion is
    ``D[i, j] = D[i-1, j-1] + C[i, j]`` (the same additions in the same order as the general
    kernel), ``L = i + 1`` and ``S = j - i`` wherever ``D`` is finite; only ``D`` is carried."""
    tpl = np.ascontiguousarray(templates[r0 : r0 + m])
    width = tiles.shape[2]
    ring = np.empty((2, width + 1), dtype=np.float64)  # column 0: the carried column
    one = np.float32(1.0)
    cur = ring[0]
    for q in range(tiles.shape[0]):
        a = q * width
        w = min(width, nb - a)
        sim = np.dot(tpl, tiles[q])
        cur = ring[0]
        for j in range(w):
            cur[1 + j] = np.float64(one - sim[0, j])
        cur[0] = state_d[r0, 0]
        state_d[r0, 0] = cur[w]
        for i in range(1, m):
            prv = cur
            cur = ring[i & 1]
            cur[0] = state_d[r0 + i, 0]
            srow = sim[i]
            for j in range(w):
                cur[1 + j] = prv[j] + np.float64(one - srow[j])
            state_d[r0 + i, 0] = cur[w]
        for j in range(w):
            acc = cur[1 + j]
            out_acc[k, a + j] = acc
            if acc < np.inf:
                out_len[k, a + j] = m
                out_start[k, a + j] = col0 + a + j - (m - 1)
                out_norm[k, a + j] = acc / m
            else:
                out_len[k, a + j] = 0
                out_start[k, a + j] = -1
                out_norm[k, a + j] = np.inf
    last = col0 + nb - 1
    for i in range(m):
        ok = state_d[r0 + i, 0] < np.inf
        state_l[r0 + i, 0] = i + 1 if ok else 0
        state_s[r0 + i, 0] = last - i if ok else -1


@njit(cache=True, error_model="numpy", nogil=True)
def _fused_general(
    templates, r0, m, tiles, nb, steps_di, steps_dj, n_ring, state_d, state_l, state_s, col0,
    out_norm, out_start, out_acc, out_len, k,
):  # fmt: skip
    """Template ``k`` with any steps over one block given as column tiles (see the comment
    above for the ring). The DP state carries from tile to tile exactly as from block to block,
    so the result is that of one pass over the whole cost matrix."""
    tpl = np.ascontiguousarray(templates[r0 : r0 + m])
    width = tiles.shape[2]
    n_prev = state_d.shape[1]
    n_steps = steps_di.shape[0]
    span = n_prev + width
    ring_d = np.empty((n_ring, span), dtype=np.float64)
    ring_m = np.empty((n_ring, span), dtype=np.float64)
    ring_s = np.empty((n_ring, span), dtype=np.int32)
    one = np.float32(1.0)
    prow = np.empty(n_steps, dtype=np.int64)
    pcol = np.empty(n_steps, dtype=np.int64)
    last = (m - 1) % n_ring
    for q in range(tiles.shape[0]):
        a = q * width
        w = min(width, nb - a)
        c0 = col0 + a  # global column of the tile's first column
        sim = np.dot(tpl, tiles[q])
        ri = n_ring - 1
        for i in range(m):
            ri = ri + 1 if ri + 1 < n_ring else 0
            for p in range(n_prev):
                ring_d[ri, p] = state_d[r0 + i, p]
                ring_m[ri, p] = state_l[r0 + i, p] + 1.0
                s = state_s[r0 + i, p]
                ring_s[ri, p] = s - c0 if s >= 0 else 0
            cd = ring_d[ri, n_prev : n_prev + w]
            cm = ring_m[ri, n_prev : n_prev + w]
            cs = ring_s[ri, n_prev : n_prev + w]
            srow = sim[i, :w]
            n_valid = 0
            for s in range(n_steps):
                if steps_di[s] <= i:
                    r = ri - steps_di[s]
                    prow[n_valid] = r + n_ring if r < 0 else r
                    pcol[n_valid] = n_prev - steps_dj[s]
                    n_valid += 1
            if i == 0:
                for j in range(w):
                    cd[j] = np.float64(one - srow[j])
                    cm[j] = 2.0
                    cs[j] = j
            elif n_valid == 0:
                cd[:] = np.inf
                cm[:] = 1.0
                cs[:] = 0
            elif n_valid == 1:
                a0, b0 = prow[0], pcol[0]
                for j in range(w):
                    cd[j] = ring_d[a0, b0 + j] + np.float64(one - srow[j])
                    cm[j] = ring_m[a0, b0 + j] + 1.0
                    cs[j] = ring_s[a0, b0 + j]
            elif n_valid == 2:
                a0, b0, a1, b1 = prow[0], pcol[0], prow[1], pcol[1]
                _frow2(
                    srow, one, cd, cm, cs,
                    ring_d[a0, b0 : b0 + w], ring_m[a0, b0 : b0 + w], ring_s[a0, b0 : b0 + w],
                    ring_d[a1, b1 : b1 + w], ring_m[a1, b1 : b1 + w], ring_s[a1, b1 : b1 + w],
                )  # fmt: skip
            elif n_valid == 3:
                a0, b0, a1, b1, a2, b2 = prow[0], pcol[0], prow[1], pcol[1], prow[2], pcol[2]
                _frow3(
                    srow, one, cd, cm, cs,
                    ring_d[a0, b0 : b0 + w], ring_m[a0, b0 : b0 + w], ring_s[a0, b0 : b0 + w],
                    ring_d[a1, b1 : b1 + w], ring_m[a1, b1 : b1 + w], ring_s[a1, b1 : b1 + w],
                    ring_d[a2, b2 : b2 + w], ring_m[a2, b2 : b2 + w], ring_s[a2, b2 : b2 + w],
                )  # fmt: skip
            else:
                for j in range(w):
                    cj = np.float64(one - srow[j])
                    bd = ring_d[prow[0], pcol[0] + j] + cj
                    bm = ring_m[prow[0], pcol[0] + j]
                    bs = ring_s[prow[0], pcol[0] + j]
                    for s in range(1, n_valid):
                        d = ring_d[prow[s], pcol[s] + j] + cj
                        mm = ring_m[prow[s], pcol[s] + j]
                        t = d * bm < bd * mm
                        bd = d if t else bd
                        bm = mm if t else bm
                        bs = ring_s[prow[s], pcol[s] + j] if t else bs
                    cd[j] = bd
                    cm[j] = bm + 1.0
                    cs[j] = bs
            for p in range(n_prev):
                d = ring_d[ri, w + p]
                ok = d < np.inf
                state_d[r0 + i, p] = d
                state_l[r0 + i, p] = np.int64(ring_m[ri, w + p]) - 1 if ok else 0
                state_s[r0 + i, p] = ring_s[ri, w + p] + c0 if ok else -1
        for j in range(w):
            acc = ring_d[last, n_prev + j]
            out_acc[k, a + j] = acc
            if acc < np.inf:
                length = np.int64(ring_m[last, n_prev + j]) - 1
                out_len[k, a + j] = length
                out_start[k, a + j] = ring_s[last, n_prev + j] + c0
                out_norm[k, a + j] = acc / length
            else:
                out_len[k, a + j] = 0
                out_start[k, a + j] = -1
                out_norm[k, a + j] = np.inf


@njit(cache=True, error_model="numpy", nogil=True)
def _sdtw_fused_one(
    templates, r0, m, tiles, nb, steps_di, steps_dj, n_ring, state_d, state_l, state_s, col0,
    out_norm, out_start, out_acc, out_len, k,
):  # fmt: skip
    """Template ``k`` over one block of column tiles: the diagonal-only kernel for the single
    step (1, 1), the general one otherwise."""
    if steps_di.shape[0] == 1 and steps_di[0] == 1 and steps_dj[0] == 1:
        _fused_diagonal(
            templates, r0, m, tiles, nb, state_d, state_l, state_s, col0,
            out_norm, out_start, out_acc, out_len, k,
        )  # fmt: skip
    else:
        _fused_general(
            templates, r0, m, tiles, nb, steps_di, steps_dj, n_ring, state_d, state_l, state_s,
            col0, out_norm, out_start, out_acc, out_len, k,
        )  # fmt: skip


@njit(cache=True, parallel=True, error_model="numpy", nogil=True)
def _sdtw_fused_parallel(
    templates, offsets, tiles, nb, steps_di, steps_dj, state_d, state_l, state_s, col0,
    out_norm, out_start, out_acc, out_len,
):  # fmt: skip
    """:func:`_sdtw_fused_one` for every template, in parallel over templates.

    templates : (sum m_k, D) float32, L2-normalised rows; template k is offsets[k]:offsets[k+1].
    tiles : (n_tiles, D, T) float32, the block's L2-normalised frames transposed, in tiles of
        T columns (the last one zero-padded); ``nb`` real columns in all.
    """
    n_ring = steps_di.max() + 1
    for k in prange(offsets.shape[0] - 1):
        _sdtw_fused_one(
            templates, offsets[k], offsets[k + 1] - offsets[k], tiles, nb, steps_di, steps_dj,
            n_ring, state_d, state_l, state_s, col0, out_norm, out_start, out_acc, out_len, k,
        )  # fmt: skip


@njit(cache=True, error_model="numpy", nogil=True)
def _sdtw_fused_serial(
    templates, offsets, tiles, nb, steps_di, steps_dj, state_d, state_l, state_s, col0,
    out_norm, out_start, out_acc, out_len,
):  # fmt: skip
    """:func:`_sdtw_fused_parallel` on one thread."""
    n_ring = steps_di.max() + 1
    for k in range(offsets.shape[0] - 1):
        _sdtw_fused_one(
            templates, offsets[k], offsets[k + 1] - offsets[k], tiles, nb, steps_di, steps_dj,
            n_ring, state_d, state_l, state_s, col0, out_norm, out_start, out_acc, out_len, k,
        )  # fmt: skip


# Below this many DTW cells per block, waking the thread pool costs more than it saves.
_PARALLEL_MIN_CELLS = 200_000


#: Recording frames per tile of the fused kernel: a template's similarities with one tile
#: (~50 rows x 256 float32) and its three DP rows (~18 KB) stay in the L1/L2 cache.
TILE_FRAMES = 256


def _sdtw_block(cost: np.ndarray, offsets: np.ndarray, *args) -> None:
    n_templates = offsets.shape[0] - 1
    if n_templates > 1 and cost.shape[0] * cost.shape[1] >= _PARALLEL_MIN_CELLS:
        _sdtw_block_parallel(cost, offsets, *args)
    else:
        _sdtw_block_serial(cost, offsets, *args)


def _tiles(frames_unit: np.ndarray, tile: int) -> np.ndarray:
    """``(n, D)`` frames -> ``(n_tiles, D, width)`` transposed tiles, zero-padded: as many tiles
    as ``tile`` frames each need, made equally wide (340 frames: two tiles of 170, not 256 +
    84 padded to 256), so that the padding costs at most ``n_tiles - 1`` columns."""
    n, dim = frames_unit.shape
    n_tiles = max(1, -(-n // tile))
    tile = max(1, -(-n // n_tiles))
    padded = np.zeros((n_tiles * tile, dim), np.float32)
    padded[:n] = frames_unit
    return np.ascontiguousarray(padded.reshape(n_tiles, tile, dim).transpose(0, 2, 1))


def _sdtw_fused(
    templates: np.ndarray,
    offsets: np.ndarray,
    frames_unit: np.ndarray,
    *args: Any,
    tile: int = TILE_FRAMES,
    parallel: bool | None = None,
) -> None:
    """Advance all templates by one block of L2-normalised frames ``(nb, D)`` with the fused
    kernel (the similarity matrix is never materialised beyond one tile per template).

    ``args``: steps_di, steps_dj, state_d, state_l, state_s, col0, out_norm, out_start,
    out_acc, out_len (as for :func:`_sdtw_block`). ``parallel=None``: over templates when the
    block has enough cells to pay for waking the thread pool.
    """
    nb = frames_unit.shape[0]
    tiles = _tiles(np.asarray(frames_unit, np.float32), tile)
    if parallel is None:
        # one numba thread (e.g. a worker of kwsos.parallel.ordered_map): skip the launcher
        parallel = (
            offsets.shape[0] > 2
            and templates.shape[0] * nb >= _PARALLEL_MIN_CELLS
            and numba.get_num_threads() > 1
        )
    kernel = _sdtw_fused_parallel if parallel else _sdtw_fused_serial
    kernel(np.ascontiguousarray(templates, np.float32), offsets, tiles, nb, *args)


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _check_steps(steps: Steps) -> tuple[np.ndarray, np.ndarray]:
    try:
        pairs = [(int(di), int(dj)) for di, dj in steps]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"steps must be a sequence of (di, dj) integer pairs, got {steps!r}"
        ) from exc
    if not pairs:
        raise ValueError("steps must contain at least one (di, dj) pair")
    if any(di < 1 or dj < 1 for di, dj in pairs):
        raise ValueError(f"every step (di, dj) needs di >= 1 and dj >= 1, got {pairs}")
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"steps contain duplicates: {pairs}")
    return (
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
    )


def _check_2d(x: np.ndarray, name: str, *, allow_empty: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_frames, n_dims), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no feature dimensions (shape {x.shape})")
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero), returned as C-contiguous float32."""
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x64, x64))
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(x64 / norms[:, None], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# pure functions
# --------------------------------------------------------------------------------------------
def cosine_cost(template: np.ndarray, recording: np.ndarray) -> np.ndarray:
    """Pairwise cosine distance between template frames and recording frames (Diss. 6.3.6).

    Parameters
    ----------
    template : ndarray, shape (m, D)
        Query frames (rows of the cost matrix); ``m >= 1``.
    recording : ndarray, shape (n, D)
        Recording frames (columns of the cost matrix); ``n`` may be 0.

    Returns
    -------
    ndarray, shape (m, n), float32
        ``1 - cos(template_i, recording_j)``, in [0, 2] up to float32 rounding. A zero frame has
        cosine 0 with everything (cost 1).
    """
    template = _check_2d(template, "template")
    recording = _check_2d(recording, "recording", allow_empty=True)
    if template.shape[1] != recording.shape[1]:
        raise ValueError(
            f"template and recording differ in feature dimension: "
            f"{template.shape[1]} != {recording.shape[1]}"
        )
    sim = _l2_normalise(template) @ _l2_normalise(recording).T
    np.subtract(np.float32(1.0), sim, out=sim)
    return sim


def max_span(template_frames: int, steps: Steps = DEFAULT_STEPS) -> int:
    """Largest number of recording columns one path through a template can cover.

    Parameters
    ----------
    template_frames : int
        Number of template rows ``m >= 1``.
    steps : sequence of (di, dj)
        Step sizes.

    Returns
    -------
    int
        ``1 + max sum(dj)`` over step sequences with ``sum(di) == m - 1``; e.g. ``2 * (m - 1) + 1``
        with the default steps, ``m`` with ``((1, 1),)``. 0 if no path reaches the last row
        (e.g. ``m = 2`` with only ``(2, 1)``).
    """
    di_arr, dj_arr = _check_steps(steps)
    m = int(template_frames)
    if m < 1:
        raise ValueError(f"template_frames must be >= 1, got {template_frames}")
    best = np.full(m, -1, dtype=np.int64)
    best[0] = 0
    for r in range(1, m):
        for di, dj in zip(di_arr.tolist(), dj_arr.tolist(), strict=True):
            if di <= r and best[r - di] >= 0:
                best[r] = max(best[r], best[r - di] + dj)
    return int(best[m - 1] + 1) if best[m - 1] >= 0 else 0


def subsequence_dtw(
    cost: np.ndarray, *, steps: Steps = DEFAULT_STEPS, return_acc: bool = False
) -> tuple[np.ndarray, ...]:
    """Length-normalised subsequence DTW with free start and end (Diss. 6.3.6).

    See the module docstring for the exact recursion.

    Parameters
    ----------
    cost : ndarray, shape (m, n)
        Local cost, template rows by recording columns; float32 or float64 (other real dtypes
        are converted to float64). Must be finite, ``m >= 1``.
    steps : sequence of (di, dj)
        Allowed steps, in tie-breaking order (earlier wins).
    return_acc : bool
        Also return the accumulated cost and path length of the last template row.

    Returns
    -------
    norm_cost : ndarray, shape (n,), float64
        ``D[m-1, j] / L[m-1, j]``; ``inf`` where no path ends in column ``j``.
    start : ndarray, shape (n,), int64
        First recording column of the best path ending in ``j``; -1 where none.
    acc : ndarray, shape (n,), float64
        Only with ``return_acc``: ``D[m-1, :]`` (``inf`` where unreachable).
    length : ndarray, shape (n,), int64
        Only with ``return_acc``: ``L[m-1, :]``, number of cells on the path (0 where unreachable).
    """
    cost = np.asarray(cost)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D (template_frames, recording_frames), got {cost.shape}")
    if cost.shape[0] == 0:
        raise ValueError("cost has no template rows")
    if cost.dtype not in (np.float32, np.float64):
        if not np.issubdtype(cost.dtype, np.number) or np.iscomplexobj(cost):
            raise ValueError(f"cost must be real-valued, got dtype {cost.dtype}")
        cost = cost.astype(np.float64)
    if not np.isfinite(cost).all():
        raise ValueError("cost contains NaN or inf")
    di_arr, dj_arr = _check_steps(steps)
    m, n = cost.shape
    n_prev = int(dj_arr.max())
    state_d = np.full((m, n_prev), np.inf)
    state_l = np.zeros((m, n_prev), dtype=np.int64)
    state_s = np.full((m, n_prev), -1, dtype=np.int64)
    norm = np.empty((1, n))
    start = np.empty((1, n), dtype=np.int64)
    acc = np.empty((1, n))
    length = np.empty((1, n), dtype=np.int64)
    _sdtw_block(
        np.ascontiguousarray(cost),
        np.array([0, m], dtype=np.int64),
        di_arr,
        dj_arr,
        state_d,
        state_l,
        state_s,
        0,
        False,
        norm,
        start,
        acc,
        length,
    )
    if return_acc:
        return norm[0], start[0], acc[0], length[0]
    return norm[0], start[0]


def dba_template(
    templates: Sequence[np.ndarray], *, max_iter: int = 30, seed: int = 0
) -> np.ndarray:
    """DTW barycenter average (DBA) of several shots of one keyword (Diss. 6.3.6).

    The paper found DBA templates worse than the individual shots; this is provided for
    comparison. Frames are L2-normalised first so that tslearn's squared Euclidean cost is twice
    the cosine distance used by the detector.

    Parameters
    ----------
    templates : sequence of ndarray, each (m_k, D)
        Shots of one keyword (lengths may differ).
    max_iter : int
        EM iterations of DBA.
    seed : int
        Seeds the (only) random choice: which shot of median length initialises the barycenter.

    Returns
    -------
    ndarray, shape (m_med, D), float64
        The barycenter; ``m_med`` is the length of a median-length shot.
    """
    arrays = [_check_2d(t, f"templates[{i}]") for i, t in enumerate(templates)]
    if not arrays:
        raise ValueError("dba_template needs at least one template")
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1:
        raise ValueError(f"templates differ in feature dimension: {sorted(dims)}")
    # tslearn takes seconds to import; keep it out of module import. It warns about the
    # optional h5py on import, which has nothing to do with DBA.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from tslearn.barycenters import dtw_barycenter_averaging

    normed = [_l2_normalise(a).astype(np.float64) for a in arrays]
    lengths = np.array([a.shape[0] for a in normed])
    order = np.argsort(lengths, kind="stable")
    median_len = lengths[order[(len(order) - 1) // 2]]
    candidates_idx = np.flatnonzero(lengths == median_len)
    init_idx = int(np.random.default_rng(seed).choice(candidates_idx))
    if len(normed) == 1:
        return normed[0].copy()
    from tslearn.utils import to_time_series_dataset

    bary = dtw_barycenter_averaging(
        to_time_series_dataset(normed),
        barycenter_size=int(median_len),
        init_barycenter=normed[init_idx],
        max_iter=int(max_iter),
    )
    return np.asarray(bary, dtype=np.float64)
