"""Cosine backend for clip embeddings: the maximum cosine similarity to each class's reference
embeddings (Diss. 6.2.2, the few-shot open-set backend; Diss. 4 uses the same similarity to
class centres for anomaly detection)."""

from __future__ import annotations

from typing import Any, Self

import numpy as np

__all__ = ["CosineScorer"]


class CosineScorer:
    """Score embeddings by their cosine similarity to labelled references.

    scikit-learn style: ``fit(references, labels)`` stores them; :meth:`class_similarities` is
    the maximum cosine similarity to each class's references and :meth:`score_samples` the
    maximum over all classes: **higher = more similar to a known class**.

    Parameters
    ----------
    assume_normalized : bool
        The references and queries are already L2-normalised (skips the normalisation, so the
        similarities are exactly the dot products).

    Attributes
    ----------
    references_ : (n_references, dim) float
    reference_labels_ : (n_references,)
    classes_ : (n_classes,)
        Sorted unique labels: the columns of :meth:`class_similarities`.
    """

    def __init__(self, *, assume_normalized: bool = False) -> None:
        self.assume_normalized = assume_normalized

    def _unit(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.assume_normalized:
            return x
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def fit(self, embeddings: np.ndarray, labels: Any) -> Self:
        emb = np.asarray(embeddings)
        labels = np.asarray(labels)
        if emb.ndim != 2 or len(emb) == 0:
            raise ValueError(f"references must be a non-empty (n, dim) array, got {emb.shape}")
        if labels.shape != (len(emb),):
            raise ValueError(f"need one label per reference, got {labels.shape} for {len(emb)}")
        self.references_ = emb
        self.reference_labels_ = labels
        self.classes_, self._column = np.unique(labels, return_inverse=True)
        return self

    def class_similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` maximum cosine similarity to each class's references (columns in
        ``classes_`` order): higher = more like that class."""
        sims = self._unit(embeddings) @ self._unit(self.references_).T
        out = np.full((len(sims), len(self.classes_)), -np.inf)
        for k in range(len(self.classes_)):
            out[:, k] = sims[:, self._column == k].max(axis=1)
        return out

    def score_samples(self, embeddings: np.ndarray) -> np.ndarray:
        """``(n,)`` maximum cosine similarity to any reference: higher = more like a known
        class."""
        return self.class_similarities(embeddings).max(axis=1)
