"""kwsos: few-shot keyword spotting and open-set sound recognition.

Learned audio embeddings, subsequence-DTW and cosine backends, decision thresholds and metrics,
following K. Wilkinghoff's dissertation (2024).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "KeywordSpotter", "SpotterConfig"]


def __getattr__(name: str):
    # Lazy: `import kwsos` (and the CLI's start-up) must not pay for torch/numba imports.
    if name in ("KeywordSpotter", "SpotterConfig"):
        from kwsos import kws

        return getattr(kws, name)
    raise AttributeError(name)
