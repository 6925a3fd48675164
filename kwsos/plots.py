"""PNG plots for keyword spotting results: where a person would rather look than read.

* :func:`plot_cost_timeline` - every keyword's match cost over one recording, with the
  reference events, the detections and the threshold(s): shows *why* a keyword was missed
  (its cost never dipped) or falsely detected (another word matched better than the keyword).
* :func:`plot_keyword_f1` - per-keyword F1 bars for one or several systems / threshold sets.

matplotlib is imported lazily (Agg backend) and files are written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kwsos.events import Event
from kwsos.io import atomic_output

__all__ = ["plot_cost_histogram", "plot_cost_timeline", "plot_keyword_f1"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def plot_cost_timeline(
    times: np.ndarray,
    costs: np.ndarray,
    keywords: Sequence[str],
    thresholds: np.ndarray | float,
    path: str | Path,
    *,
    reference: Sequence[Event] = (),
    detections: Sequence[Event] = (),
    title: str = "",
) -> None:
    """Heat map of ``costs`` (n_keywords, n_frames) over ``times`` (one row per keyword, dark =
    good match, frames above the keyword's threshold greyed), reference events as green boxes
    on their keyword's row, detections as black outlines (red when they match no reference
    event of the same keyword), and below it each keyword's cost relative to its threshold."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    costs = np.asarray(costs, np.float64)
    n_kw, n = costs.shape
    thr = np.broadcast_to(np.asarray(thresholds, np.float64), (n_kw,))
    finite = costs[np.isfinite(costs)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(max(thr.max() * 1.3, lo + 1e-3))
    shown = np.where(np.isfinite(costs), np.minimum(costs, hi), hi)
    row = {str(k): i for i, k in enumerate(keywords)}
    dt = float(np.median(np.diff(times))) if n > 1 else 0.01
    extent = (float(times[0] - dt / 2), float(times[-1] + dt / 2), n_kw - 0.5, -0.5)

    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(12, 2.2 + 0.32 * n_kw), sharex=True, height_ratios=[max(n_kw, 3), 3]
    )
    im = ax.imshow(
        shown, aspect="auto", cmap="magma", extent=extent, vmin=lo, vmax=hi, interpolation="nearest"
    )
    over = np.ma.masked_where(costs <= thr[:, None], np.ones_like(costs))
    ax.imshow(
        over,
        aspect="auto",
        cmap="Greys",
        alpha=0.55,
        extent=extent,
        vmin=0,
        vmax=1.5,
        interpolation="nearest",
    )
    for e in reference:
        if e.label in row:
            ax.add_patch(
                Rectangle(
                    (e.onset, row[e.label] - 0.5),
                    e.offset - e.onset,
                    1,
                    fill=False,
                    ec="lime",
                    lw=2.2,
                )
            )
    refs = [(e.label, e.onset, e.offset) for e in reference]
    for e in detections:
        if e.label not in row:
            continue
        hit = any(
            lab == e.label
            and abs(on - e.onset) <= 0.2
            and abs(off - e.offset) <= max(0.2, 0.5 * (off - on))
            for lab, on, off in refs
        )
        ax.add_patch(
            Rectangle(
                (e.onset, row[e.label] - 0.35),
                e.offset - e.onset,
                0.7,
                fill=False,
                ec="white" if hit else "red",
                lw=1.4,
                ls="--",
            )
        )
    ax.set_yticks(range(n_kw), [str(k) for k in keywords], fontsize=8)
    ax.set_title(title or "keyword match cost (dark = good match, grey = above threshold)")
    fig.colorbar(im, ax=ax, pad=0.01, label="cost")
    margin = costs - thr[:, None]
    for i in range(n_kw):
        m = np.where(np.isfinite(margin[i]), margin[i], np.nan)
        ax2.plot(times, m, lw=0.8, alpha=0.8, label=str(keywords[i]))
    for e in reference:
        ax2.axvspan(e.onset, e.offset, color="lime", alpha=0.15)
    ax2.axhline(0, color="k", lw=1, ls="--")
    ax2.set_ylim(
        min(-0.05, np.nanmin(margin[np.isfinite(margin)], initial=0)) * 1.1, 0.25 * (hi - lo) + 0.05
    )
    ax2.set_ylabel("cost - threshold")
    ax2.set_xlabel("time (s); green: reference, white dashed: correct detection, red: false alarm")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def plot_keyword_f1(
    per_label: Mapping[str, Mapping[str, float]],
    path: str | Path,
    *,
    title: str = "per-keyword F1",
) -> None:
    """Grouped horizontal bars: ``per_label[series][keyword]`` = F1 in [0, 1] (e.g. series
    "global threshold" and "per-keyword thresholds"); keywords sorted by the first series."""
    plt = _pyplot()
    series = list(per_label)
    if not series:
        raise ValueError("nothing to plot")
    first = per_label[series[0]]
    keywords = sorted(first, key=lambda k: (first[k], k))
    for s in series[1:]:
        keywords += sorted(set(per_label[s]) - set(keywords))
    y = np.arange(len(keywords))
    h = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * len(keywords)))
    for i, s in enumerate(series):
        vals = [100 * per_label[s].get(k, 0.0) for k in keywords]
        ax.barh(y + (i - (len(series) - 1) / 2) * h, vals, height=h, label=s)
    ax.set_yticks(y, keywords, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("F1 (%)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)


def plot_cost_histogram(
    target: np.ndarray,
    impostor: np.ndarray,
    path: str | Path,
    *,
    threshold: float | None = None,
    title: str = "match costs",
) -> None:
    """Densities of the costs of keyword occurrences (target) and of everything else (impostor
    local minima), with the threshold: the overlap is the error no threshold can avoid."""
    plt = _pyplot()
    t = np.asarray(target, np.float64)
    i = np.asarray(impostor, np.float64)
    t, i = t[np.isfinite(t)], i[np.isfinite(i)]
    both = np.r_[t, i]
    if not both.size:
        raise ValueError("no finite costs to plot")
    bins = np.linspace(both.min(), np.quantile(both, 0.995), 60)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(
        i, bins=bins, density=True, alpha=0.5, color="grey", label=f"impostor minima (n={len(i)})"
    )
    ax.hist(
        t,
        bins=bins,
        density=True,
        alpha=0.6,
        color="green",
        label=f"keyword occurrences (n={len(t)})",
    )
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("match cost (lower = better match)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))
    plt.close(fig)
