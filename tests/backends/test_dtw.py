"""Tests for kwsos.backends.dtw against slow, obvious references (Diss. 6.3.6)."""

from __future__ import annotations

import numpy as np
import pytest

from kwsos.backends import (
    CANDIDATE_DTYPE,
    DEFAULT_STEPS,
    SubsequenceDTWDetector,
    cosine_cost,
    max_span,
    subsequence_dtw,
)

STEP_SETS = [
    DEFAULT_STEPS,
    ((1, 1),),
    ((1, 1), (1, 2)),
    ((1, 1), (2, 1)),
    ((2, 1), (1, 1), (1, 2), (1, 3)),  # order matters for ties; > 3 steps: generic loop
]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ------------------------------------------------------------------------------------------
# slow references
# ------------------------------------------------------------------------------------------
def reference_sdtw(cost: np.ndarray, steps=DEFAULT_STEPS):
    """Full (m, n) accumulated cost D, path length L and start S, written out plainly."""
    m, n = cost.shape
    D = np.full((m, n), np.inf)
    L = np.zeros((m, n), dtype=np.int64)
    S = np.full((m, n), -1, dtype=np.int64)
    for j in range(n):
        D[0, j] = float(cost[0, j])
        L[0, j] = 1
        S[0, j] = j
    for i in range(1, m):
        for j in range(n):
            c = float(cost[i, j])
            best = np.inf
            for di, dj in steps:
                if i - di < 0 or j - dj < 0:
                    continue
                if not np.isfinite(D[i - di, j - dj]):
                    continue
                val = (D[i - di, j - dj] + c) / (L[i - di, j - dj] + 1)
                if val < best:
                    best = val
                    D[i, j] = D[i - di, j - dj] + c
                    L[i, j] = L[i - di, j - dj] + 1
                    S[i, j] = S[i - di, j - dj]
    norm = np.where(L[-1] > 0, D[-1] / np.maximum(L[-1], 1), np.inf)
    return D, L, S, norm


def reference_candidates(templates, labels, features, steps=DEFAULT_STEPS, max_cost=np.inf):
    """Candidates from the full reference matrices of each template (whole recording)."""
    keywords = sorted(set(labels))
    n = features.shape[0]
    norms, starts = [], []
    for t in templates:
        _, _, S, norm = reference_sdtw(cosine_cost(t, features), steps)
        norms.append(norm)
        starts.append(S[-1])
    out = []
    for w, kw in enumerate(keywords):
        idx = [k for k, lab in enumerate(labels) if lab == kw]
        curve = np.full(n, np.inf)
        st = np.full(n, -1)
        tp = np.full(n, -1)
        for j in range(n):
            for k in idx:  # ascending: ties keep the lowest template index
                if norms[k][j] < curve[j]:
                    curve[j], st[j], tp[j] = norms[k][j], starts[k][j], k
        for j in range(n):
            left_ok = j == 0 or curve[j] < curve[j - 1]
            right_ok = j == n - 1 or curve[j] <= curve[j + 1]
            if left_ok and right_ok and np.isfinite(curve[j]) and curve[j] <= max_cost:
                out.append((w, st[j], j, curve[j], tp[j]))
    out.sort(key=lambda r: (r[2], r[0]))
    return np.array(out, dtype=CANDIDATE_DTYPE)


def reference_postprocess(cand, template_lengths, threshold, ratio):
    """Frame-occupancy version of the overlap resolution + minimum-duration filter."""
    cand = [c for c in cand.tolist() if c[3] <= threshold]
    cand.sort(key=lambda r: (r[3], r[1], r[0]))
    top = max([c[2] for c in cand], default=0) + 1
    occupied = np.zeros(top, dtype=bool)
    kept = []
    for kw, s, e, cost, tpl in cand:
        best = None
        j = s
        while j <= e:
            if occupied[j]:
                j += 1
                continue
            k = j
            while k + 1 <= e and not occupied[k + 1]:
                k += 1
            if best is None or k - j > best[1] - best[0]:
                best = (j, k)
            j = k + 1
        if best is None:
            continue
        occupied[best[0] : best[1] + 1] = True
        kept.append((kw, best[0], best[1], cost, tpl))
    kept = [r for r in kept if r[2] - r[1] + 1 >= ratio * template_lengths[r[4]]]
    kept.sort(key=lambda r: (r[1], r[0]))
    return np.array(kept, dtype=CANDIDATE_DTYPE)


def stretch(x: np.ndarray, factor: float) -> np.ndarray:
    m = x.shape[0]
    idx = np.round(np.linspace(0, m - 1, max(1, round(m * factor)))).astype(int)
    return x[idx]


def plant(rng, n, dim, templates, placements, noise=0.05):
    """Random features with stretched, slightly noisy copies of templates planted.

    placements: list of (template index, first frame, stretch factor).
    Returns features and the list of (template, start, end) planted.
    """
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    truth = []
    for k, pos, factor in placements:
        seg = stretch(templates[k], factor)
        seg = seg + noise * rng.standard_normal(seg.shape).astype(np.float32)
        feats[pos : pos + len(seg)] = seg
        truth.append((k, pos, pos + len(seg) - 1))
    return feats, truth


def blocks_of(x: np.ndarray, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


# ------------------------------------------------------------------------------------------
# subsequence_dtw
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", STEP_SETS)
@pytest.mark.parametrize("shape", [(9, 4), (1, 12), (6, 1), (12, 13), (7, 1500)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subsequence_dtw_matches_reference(rng, steps, shape, dtype):
    cost = (rng.random(shape) * 2).astype(dtype)
    D, L, S, norm = reference_sdtw(cost, steps)
    got_norm, got_start, got_acc, got_len = subsequence_dtw(cost, steps=steps, return_acc=True)
    np.testing.assert_array_equal(got_start, S[-1])
    np.testing.assert_array_equal(got_len, L[-1])
    np.testing.assert_array_equal(np.isinf(got_acc), np.isinf(D[-1]))
    fin = np.isfinite(D[-1])
    np.testing.assert_allclose(got_acc[fin], D[-1][fin], rtol=1e-9)
    np.testing.assert_allclose(got_norm[fin], norm[fin], rtol=1e-9)
    assert np.all(np.isinf(got_norm[~fin]))
    assert got_norm.dtype == np.float64 and got_start.dtype == np.int64
    n2, s2 = subsequence_dtw(cost, steps=steps)
    np.testing.assert_array_equal(n2, got_norm)
    np.testing.assert_array_equal(s2, got_start)


def test_subsequence_dtw_hand_worked():
    # Template rows i = 0..2, recording columns j = 0..4, default steps (1,1),(1,2),(2,1).
    cost = np.array(
        [
            [0.0, 1.0, 2.0, 0.0, 1.0],
            [1.0, 0.0, 1.0, 2.0, 0.0],
            [2.0, 2.0, 0.0, 1.0, 1.0],
        ]
    )
    # Row 0 (free start): D = C[0], L = 1, S = j.
    # Row 1: (1,0): only (1,1)->(0,-1) and (1,2) invalid, (2,1) needs i>=2 -> D=inf, L=0, S=-1.
    #   (1,1): from (0,0): (0+0)/2 = 0 -> D=0, L=2, S=0.
    #   (1,2): (1,1) from (0,1): (1+1)/2 = 1; (1,2) from (0,0): (0+1)/2 = 0.5 -> D=1, L=2, S=0.
    #   (1,3): (1,1) from (0,2): (2+2)/2 = 2; (1,2) from (0,1): (1+2)/2 = 1.5 -> D=3, L=2, S=1.
    #   (1,4): (1,1) from (0,3): (0+0)/2 = 0 -> D=0, L=2, S=3 ((1,2) from (0,2) gives 1).
    # Row 2:
    #   (2,0): no predecessor -> inf.
    #   (2,1): (1,1) from (1,0)=inf; (1,2) invalid; (2,1) from (0,0): (0+2)/2 = 1 -> D=2,L=2,S=0.
    #   (2,2): (1,1) from (1,1): (0+0)/3 = 0 -> D=0, L=3, S=0.
    #   (2,3): (1,1) from (1,2): (1+1)/3 = 2/3; (1,2) from (1,1): (0+1)/3 = 1/3;
    #          (2,1) from (0,2): (2+1)/2 = 1.5 -> D=1, L=3, S=0, norm 1/3.
    #   (2,4): (1,1) from (1,3): (3+1)/3 = 4/3; (1,2) from (1,2): (1+1)/3 = 2/3;
    #          (2,1) from (0,3): (0+1)/2 = 0.5 -> D=1, L=2, S=3, norm 0.5.
    norm, start, acc, length = subsequence_dtw(cost, return_acc=True)
    np.testing.assert_array_equal(acc, [np.inf, 2.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(length, [0, 2, 3, 3, 2])
    np.testing.assert_array_equal(start, [-1, 0, 0, 0, 3])
    np.testing.assert_array_equal(norm, [np.inf, 1.0, 0.0, 1.0 / 3.0, 0.5])
    # Ties go to the earlier step: with a constant cost every step gives the same value.
    norm, start, acc, length = subsequence_dtw(np.ones((2, 3)), return_acc=True)
    np.testing.assert_array_equal(start, [-1, 0, 1])  # (1,1) preferred over (1,2) at j=2
    np.testing.assert_array_equal(norm, [np.inf, 1.0, 1.0])


def test_max_span():
    assert max_span(1) == 1
    assert max_span(10) == 19
    assert max_span(10, ((1, 1),)) == 10
    assert max_span(10, ((1, 1), (2, 1))) == 10
    assert max_span(2, ((2, 1),)) == 0
    assert max_span(5, ((2, 1),)) == 3


def test_max_span_bounds_paths(rng):
    for steps in STEP_SETS:
        m = 6
        _, L, S, _ = reference_sdtw(rng.random((m, 60)), steps)
        ends = np.flatnonzero(L[-1] > 0)
        spans = ends - S[-1][ends] + 1
        assert spans.max() <= max_span(m, steps)


# ------------------------------------------------------------------------------------------
# cosine_cost
# ------------------------------------------------------------------------------------------
def test_cosine_cost_naive(rng):
    a = rng.standard_normal((7, 5))
    b = rng.standard_normal((11, 5))
    b[3] = 0.0
    got = cosine_cost(a, b)
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
    nb[3] = 0.0
    assert got.dtype == np.float32 and got.shape == (7, 11)
    np.testing.assert_allclose(got, 1 - na @ nb.T, atol=1e-6)
    np.testing.assert_allclose(got[:, 3], 1.0)
    assert cosine_cost(a, b[:0]).shape == (7, 0)


# ------------------------------------------------------------------------------------------
# detector
# ------------------------------------------------------------------------------------------
def make_bank(rng, dim=12, lengths=(10, 14, 8, 12), labels=("yes", "no", "yes", "stop")):
    templates = [rng.standard_normal((m, dim)).astype(np.float32) for m in lengths]
    return templates, list(labels)


def test_search_matches_subsequence_dtw(rng):
    templates, labels = make_bank(rng)
    feats = rng.standard_normal((300, 12)).astype(np.float32)
    det = SubsequenceDTWDetector(block_frames=37).fit(templates, labels)
    norm, start = det.search(feats)
    assert norm.shape == (4, 300) and start.shape == (4, 300)
    for k, t in enumerate(templates):
        rn, rs = subsequence_dtw(cosine_cost(t, feats))
        np.testing.assert_array_equal(start[k], rs)
        np.testing.assert_allclose(norm[k], rn, rtol=1e-6, atol=1e-6)
    assert list(det.keywords_) == ["no", "stop", "yes"]
    np.testing.assert_array_equal(det.template_keyword_, [2, 0, 2, 1])
    np.testing.assert_array_equal(det.offsets_, [0, 10, 24, 32, 44])
    np.testing.assert_allclose(np.linalg.norm(det.templates_, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("steps", [DEFAULT_STEPS, ((1, 1),)])
def test_detector_matches_reference_and_finds_planted(rng, steps):
    templates, labels = make_bank(rng)
    placements = [(0, 20, 1.0), (1, 80, 1.4), (3, 150, 0.8), (2, 230, 1.0)]
    if steps == ((1, 1),):  # only the diagonal step: no time warping possible
        placements = [(k, pos, 1.0) for k, pos, _ in placements]
    feats, truth = plant(rng, 300, 12, templates, placements)
    det = SubsequenceDTWDetector(threshold=0.3, steps=steps, block_frames=50)
    det.fit(templates, labels)

    cand = det.candidates(blocks_of(feats, 23))
    ref = reference_candidates(templates, labels, feats, steps)
    np.testing.assert_array_equal(
        cand[["keyword", "start", "end", "template"]], ref[["keyword", "start", "end", "template"]]
    )
    np.testing.assert_allclose(cand["cost"], ref["cost"], rtol=1e-6, atol=1e-6)

    got = det.detect(blocks_of(feats, 23))
    expected = reference_postprocess(ref, det.template_lengths_, 0.3, 0.5)
    np.testing.assert_array_equal(
        got[["keyword", "start", "end", "template"]],
        expected[["keyword", "start", "end", "template"]],
    )
    # At 0.3 the (1, 2) step can stretch a planted match over a few noise frames (a second,
    # weaker minimum); at 0.2 exactly the planted matches remain.
    got = det.postprocess(cand, threshold=0.2)
    assert len(got) == len(truth)
    for rec, (k, s, e) in zip(got, sorted(truth, key=lambda r: r[1]), strict=True):
        assert rec["keyword"] == det.template_keyword_[k]
        assert abs(rec["start"] - s) <= 1 and abs(rec["end"] - e) <= 1
        assert rec["cost"] < 0.05


def test_candidates_independent_of_blocking(rng):
    templates, labels = make_bank(rng)
    # 64 * 3 = 192 and 7 * 27 = 189: planted matches straddle those block borders.
    placements = [(1, 185, 1.2), (0, 60, 1.0), (3, 250, 1.0)]
    feats, truth = plant(rng, 400, 12, templates, placements)
    ref = SubsequenceDTWDetector(block_frames=10_000).fit(templates, labels).candidates([feats])
    assert len(ref) > 50
    for block_frames in (1, 7, 64, 10_000):
        det = SubsequenceDTWDetector(block_frames=block_frames).fit(templates, labels)
        for size in (1, 7, 64, 400):
            got = det.candidates(blocks_of(feats, size))
            np.testing.assert_array_equal(
                got[["keyword", "start", "end", "template"]],
                ref[["keyword", "start", "end", "template"]],
            )
            np.testing.assert_allclose(got["cost"], ref["cost"], rtol=1e-6, atol=1e-6)
        found = det.detect(blocks_of(feats, 7))
        k, s, e = truth[0]
        hits = found[(found["start"] <= 192) & (found["end"] >= 192)]
        assert len(hits) == 1
        assert abs(hits[0]["start"] - s) <= 1 and abs(hits[0]["end"] - e) <= 1
        assert hits[0]["template"] == k


def test_candidates_edges_and_hook(rng):
    templates, labels = make_bank(rng)
    det = SubsequenceDTWDetector(block_frames=4).fit(templates, labels)
    calls = []
    det.candidates(
        [rng.standard_normal((5, 12)), np.zeros((0, 12)), rng.standard_normal((6, 12))],
        hook=lambda step, completed, total: calls.append((step, completed, total)),
    )
    assert calls == [("dtw", 4, None), ("dtw", 8, None), ("dtw", 11, None)]
    assert det.candidates([]).dtype == CANDIDATE_DTYPE and len(det.candidates([])) == 0
    # A recording shorter than the shortest template: no path reaches the last row.
    assert len(det.candidates([rng.standard_normal((3, 12))])) == 0
    # A monotonically decreasing curve has its minimum at the last column.
    tpl = [np.eye(4, dtype=np.float32)[:1]]
    feats = np.array([[0, 1, 0, 0], [1, 1, 0, 0], [1, 0.1, 0, 0]], dtype=np.float32)
    for size in (1, 2, 3):
        det1 = SubsequenceDTWDetector(block_frames=size).fit(tpl, ["a"])
        c = det1.candidates([feats])
        np.testing.assert_array_equal(c["end"], [2])
        np.testing.assert_array_equal(c["start"], [2])


def test_postprocess_overlap_and_min_duration(rng):
    templates = [rng.standard_normal((m, 3)) for m in (10, 30, 24, 4)]
    det = SubsequenceDTWDetector(threshold=0.4).fit(templates, ["a", "b", "c", "b"])
    cand = np.array(
        [
            (1, 12, 28, 0.30, 3),  # fully covered by A and B -> dropped
            (2, 0, 60, 0.25, 2),  # C: free [0, 9] and [51, 60], equally long -> earlier [0, 9]
            (0, 10, 30, 0.10, 0),  # A: best, kept whole
            (1, 25, 50, 0.20, 1),  # B: overlaps A on 25..30 -> [31, 50]
            (0, 70, 80, 0.50, 0),  # above threshold
        ],
        dtype=CANDIDATE_DTYPE,
    )
    got = det.postprocess(cand)
    # C keeps 10 frames < 0.5 * 24 -> dropped by the min-duration filter; B keeps 20 >= 15.
    assert got.tolist() == [(0, 10, 30, 0.10, 0), (1, 31, 50, 0.20, 1)]
    det.min_duration_ratio = 0.0
    assert det.postprocess(cand).tolist() == [
        (2, 0, 9, 0.25, 2),
        (0, 10, 30, 0.10, 0),
        (1, 31, 50, 0.20, 1),
    ]
    # Higher threshold lets the last one in; equal costs resolve by earlier start.
    got = det.postprocess(cand, threshold=1.0)
    assert (0, 70, 80, 0.50, 0) in got.tolist()
    tie = np.array([(1, 5, 14, 0.2, 1), (0, 0, 9, 0.2, 0)], dtype=CANDIDATE_DTYPE)
    assert det.postprocess(tie).tolist() == [(0, 0, 9, 0.2, 0), (1, 10, 14, 0.2, 1)]
    np.testing.assert_array_equal(
        det.postprocess(cand, threshold=1.0),
        reference_postprocess(cand, det.template_lengths_, 1.0, 0.0),
    )
    assert len(det.postprocess(np.empty(0, CANDIDATE_DTYPE))) == 0


def _random_candidates(rng):
    """A 3-template detector and 300 random candidates with tied (rounded) costs."""
    templates = [rng.standard_normal((m, 3)) for m in (5, 9, 14)]
    det = SubsequenceDTWDetector(threshold=0.6).fit(templates, ["x", "y", "y"])
    n = 300
    starts = rng.integers(0, 250, n)
    cand = np.zeros(n, dtype=CANDIDATE_DTYPE)
    cand["start"] = starts
    cand["end"] = starts + rng.integers(0, 40, n)
    cand["cost"] = np.round(rng.random(n), 2)  # rounding creates ties
    cand["template"] = rng.integers(0, 3, n)
    cand["keyword"] = det.template_keyword_[cand["template"]]
    return det, cand


def test_postprocess_matches_reference_random(rng):
    det, cand = _random_candidates(rng)
    np.testing.assert_array_equal(
        det.postprocess(cand), reference_postprocess(cand, det.template_lengths_, 0.6, 0.5)
    )


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def test_bad_input(rng):
    good = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match="2-D"):
        subsequence_dtw(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        subsequence_dtw(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="no template rows"):
        subsequence_dtw(np.ones((0, 3)))
    with pytest.raises(ValueError, match="di >= 1"):
        subsequence_dtw(np.ones((2, 3)), steps=((0, 1),))
    with pytest.raises(ValueError, match="at least one"):
        subsequence_dtw(np.ones((2, 3)), steps=())
    with pytest.raises(ValueError, match="2-D"):
        cosine_cost(np.ones(4), good)
    with pytest.raises(ValueError, match="feature dimension"):
        cosine_cost(good, np.ones((3, 5)))
    with pytest.raises(ValueError, match="empty"):
        cosine_cost(np.ones((0, 4)), good)
    with pytest.raises(ValueError, match="NaN"):
        cosine_cost(good, np.full((2, 4), np.nan))

    det = SubsequenceDTWDetector()
    with pytest.raises(RuntimeError, match="not fitted"):
        det.search(good)
    with pytest.raises(ValueError, match="empty"):
        det.fit([good, np.ones((0, 4))], ["a", "b"])
    with pytest.raises(ValueError, match="feature dimension"):
        det.fit([good, np.ones((3, 5))], ["a", "b"])
    with pytest.raises(ValueError, match="labels"):
        det.fit([good], ["a", "b"])
    with pytest.raises(ValueError, match="2-D"):
        det.fit([np.ones((2, 3, 4))], ["a"])
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit([bad], ["a"])
    det.fit([good], ["a"])
    with pytest.raises(ValueError, match="dims"):
        det.candidates([np.ones((10, 3))])
    with pytest.raises(ValueError, match="2-D"):
        det.search(np.ones(10))
    with pytest.raises(ValueError, match="NaN"):
        det.detect([np.ones((10, 4)), np.full((3, 4), np.nan)])
    with pytest.raises(ValueError, match="CANDIDATE_DTYPE"):
        det.postprocess(np.zeros(3))


def test_no_tslearn_at_import():
    import subprocess
    import sys

    code = "import sys, kwsos.backends.dtw; assert 'tslearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore:h5py not installed")
@pytest.mark.slow  # importing tslearn and compiling its DBA takes ~10 s
def test_dba_template(rng):
    pytest.importorskip("tslearn")
    from kwsos.backends.dtw import dba_template

    base = rng.standard_normal((12, 6))
    shots = [
        stretch(base, f) + 0.01 * rng.standard_normal((round(12 * f), 6)) for f in (0.8, 1.0, 1.3)
    ]
    bary = dba_template(shots, max_iter=5)
    assert bary.shape == (12, 6)
    norm, _ = subsequence_dtw(cosine_cost(bary, base), steps=((1, 1),))
    assert norm[-1] < 0.05
    np.testing.assert_array_equal(bary, dba_template(shots, max_iter=5))


def test_postprocess_per_keyword_thresholds(rng):
    """One threshold per keyword = thresholding each keyword by hand, then the usual overlap
    resolution (a candidate kept by a looser threshold can take the span of a stricter one)."""
    det, cand = _random_candidates(rng)
    thr = np.array([0.3, 0.7])
    keep = cand["cost"] <= thr[cand["keyword"]]
    want = reference_postprocess(cand[keep], det.template_lengths_, np.inf, 0.5)
    np.testing.assert_array_equal(det.postprocess(cand, thr), want)
    assert set(want["keyword"]) == {0, 1}
    with pytest.raises(ValueError, match="one threshold per keyword"):
        det.postprocess(cand, np.array([0.3, 0.4, 0.5]))


@pytest.mark.parametrize("steps", [*STEP_SETS, ((2, 1),), ((1, 2),), ((1, 2), (2, 1))])
@pytest.mark.parametrize("tile", [1, 7, 256])
@pytest.mark.parametrize("parallel", [False, True])
def test_fused_kernel_equals_the_cost_matrix_kernel(rng, steps, tile, parallel):
    """The fused kernel (similarities per tile, never the whole matrix) gives the results of
    the kernel that takes the whole float32 similarity matrix, carried state included: the
    diagonal-only kernel for ((1, 1),), rows that no path reaches (e.g. odd rows with only
    (2, 1)) and the generic loop for more than three steps included."""
    from kwsos.backends.dtw import _check_steps, _l2_normalise, _sdtw_block, _sdtw_fused

    lens = rng.integers(1, 12, size=5)
    tpl = _l2_normalise(rng.standard_normal((lens.sum(), 6)).astype(np.float32))
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    di, dj = _check_steps(steps)

    def state():
        r, p = tpl.shape[0], int(dj.max())
        return [np.full((r, p), np.inf), np.zeros((r, p), np.int64), np.full((r, p), -1, np.int64)]

    def outs(n):
        k = len(lens)
        return [
            np.empty((k, n)),
            np.empty((k, n), np.int64),
            np.empty((k, n)),
            np.empty((k, n), np.int64),
        ]

    s_ref, s_fused = state(), state()
    col0 = 0
    for nb in (23, 1, 40):  # consecutive blocks: the carried state must agree too
        fr = _l2_normalise(rng.standard_normal((nb, 6)).astype(np.float32))
        ref, got = outs(nb), outs(nb)
        _sdtw_block(tpl @ fr.T, off, di, dj, *s_ref, col0, True, *ref)
        _sdtw_fused(tpl, off, fr, di, dj, *s_fused, col0, *got, tile=tile, parallel=parallel)
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got[1], ref[1])  # starts
        np.testing.assert_array_equal(got[3], ref[3])  # path lengths
        for a, b in zip(s_ref, s_fused, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
        col0 += nb
