"""Progress hooks: how long-running library functions report progress (pyannote.audio style).

A hook is any callable ``hook(step, *, completed, total, **info)``: ``step`` names the stage
(``"train"``, ``"detect"``, ...), ``completed`` of ``total`` units are done, ``info`` carries
extras (e.g. the current loss). The library calls hooks and never prints; the command line
passes a rich progress bar (:func:`kwsos.cli._common.progress_hook`).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Hook", "call_hook", "subtask_hook"]


class Hook(Protocol):
    """Progress callback: ``hook(step, completed=..., total=..., **info)``."""

    def __call__(
        self, step: str, *, completed: int = ..., total: int = ..., **info: Any
    ) -> None: ...


def call_hook(hook: Hook | None, step: str, *, completed: int, total: int, **info: Any) -> None:
    """Call ``hook`` if there is one."""
    if hook is not None:
        hook(step, completed=completed, total=total, **info)


def subtask_hook(hook: Hook | None, index: int, count: int) -> Hook | None:
    """Progress of sub-task ``index`` of ``count`` equal ones, reported as one run over all.

    E.g. the networks of an ensemble, trained one after the other: network ``i`` at ``k`` of
    ``n`` epochs reports ``i * n + k`` of ``count * n``.
    """
    if hook is None or count == 1:
        return hook

    def report(step: str, *, completed: int = 0, total: int = 0, **info: Any) -> None:
        hook(step, completed=index * total + completed, total=count * total, **info)

    return report
