"""The tasks on top of the shared core: keyword spotting (:mod:`~kwsos.tasks.kws`) and few-shot
open-set classification (:mod:`~kwsos.tasks.openset`). Each is a thin estimator that wires a
frontend, an embedding, a backend and a decision rule from the shared modules."""
