"""The one error type of problem input: ``ProblemError``, a single line naming the field and the fix."""
from __future__ import annotations


class ProblemError(ValueError):
    """Invalid problem input; ``str(err)`` is one line: '<field>: <what is wrong>; <how to fix>'."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        self.message = message
        super().__init__(f"{field_name}: {message}")
