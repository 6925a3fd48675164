"""The one exception type the command line turns into a one-line message and exit code 2."""

from __future__ import annotations

__all__ = ["KwsosError"]


class KwsosError(ValueError):
    """A problem with the user's input (file, bank, option), explained in one line."""
