"""The one exception type the CLI turns into a friendly message."""

from __future__ import annotations


class HopError(Exception):
    """A problem the user can fix: what went wrong, and how to fix it.

    The CLI prints ``message`` then ``hint`` as one paragraph and exits with
    ``exit_code``; no traceback is shown.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message
