"""kwsos: few-shot keyword spotting and open-set sound recognition.

Learned audio embeddings, subsequence-DTW and cosine backends, decision thresholds and metrics,
following K. Wilkinghoff's dissertation (2024). The pipeline is audio -> features ->
embeddings -> backend -> decision -> metric, with the tasks on top (``docs/architecture.md``).
"""

__version__ = "0.1.0"

__all__ = [
    "KeywordSpotter",
    "OpenSetClassifier",
    "OpenSetConfig",
    "SpotterConfig",
    "__version__",
]

_LAZY = {
    "KeywordSpotter": "kwsos.tasks.kws",
    "SpotterConfig": "kwsos.tasks.kws",
    "OpenSetClassifier": "kwsos.tasks.openset",
    "OpenSetConfig": "kwsos.tasks.openset",
}


def __getattr__(name: str):
    # Lazy: `import kwsos` (and the CLI's start-up) must not pay for torch/numba imports.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
