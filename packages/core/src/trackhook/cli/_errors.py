"""The error a command raises for a user's mistake: a message and a hint."""

from __future__ import annotations

from trackhook.errors import TrackhookError

__all__ = ["CommandError"]


class CommandError(TrackhookError):
    """A command cannot do what it was asked; ``hint`` says what to do instead."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message)
