"""The error types a user sees: ``ProblemError`` (problem input; a single line naming the field and the fix)
and ``SolveError`` (a valid problem the optimizer could not solve; a single line)."""
from __future__ import annotations


class ProblemError(ValueError):
    """Invalid problem input; ``str(err)`` is one line: '<field>: <what is wrong>; <how to fix>'."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        self.message = message
        super().__init__(f"{field_name}: {message}")


class SolveError(RuntimeError):
    """A valid problem on which the optimizer produced nothing to report (every iterate non-finite):
    ``str(err)`` is one line saying what to check."""
