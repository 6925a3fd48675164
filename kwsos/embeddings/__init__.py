"""Learned embeddings: temporal frame embeddings for keyword spotting
(:mod:`~kwsos.embeddings.temporal`, TACos / L_kw / sliding window) and clip embeddings for
open-set classification and anomaly detection (:mod:`~kwsos.embeddings.clip`).

The submodules are imported on demand (``from kwsos.embeddings.temporal import ...``); neither
imports torch before it trains or runs a network."""
