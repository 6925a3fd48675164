"""The audio frontend's high-pass filter: a second-order IIR section as a private numba kernel.

:mod:`kwsos.audio` imports this module where it filters, not at import time. It replaces
:func:`scipy.signal.lfilter` for the biquad because importing ``scipy.signal`` costs ~0.5 s of
every command's start-up (its array-API back-end probing imports scipy.stats and
scipy.interpolate), while numba is loaded anyway by the DTW search. The recursion is the
direct form II transposed of ``lfilter``, operation for operation, so the output is bit-identical
(``tests/test_audio.py`` checks it against scipy).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["biquad_filter"]


@njit(cache=True, nogil=True)
def _biquad(b, a, x, zi):  # pragma: no cover - compiled
    y = np.empty_like(x)
    b0, b1, b2 = b[0], b[1], b[2]
    a1, a2 = a[1], a[2]
    z0, z1 = zi[0], zi[1]
    for n in range(x.shape[0]):
        xn = x[n]
        yn = z0 + b0 * xn
        z0 = z1 + xn * b1 - yn * a1
        z1 = xn * b2 - yn * a2
        y[n] = yn
    zf = np.empty(2)
    zf[0] = z0
    zf[1] = z1
    return y, zf


def biquad_filter(
    b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` ``(n,)`` with the biquad ``b, a`` (3 coefficients each, ``a[0] == 1``).

    Returns ``(y, zf)`` like ``scipy.signal.lfilter(b, a, x, zi=zi)``: float64 output and the
    final filter state, to pass as ``zi`` with the next block (zero state when ``zi`` is None).
    """
    b = np.ascontiguousarray(b, dtype=np.float64)
    a = np.ascontiguousarray(a, dtype=np.float64)
    if b.shape != (3,) or a.shape != (3,) or a[0] != 1.0:
        raise ValueError("need 3 coefficients each for b and a, normalised so that a[0] == 1")
    state = np.zeros(2) if zi is None else np.ascontiguousarray(zi, dtype=np.float64)
    return _biquad(b, a, np.ascontiguousarray(x, dtype=np.float64), state)
