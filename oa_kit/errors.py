"""Error types: every bad input raises ``OAKitError`` with one line naming the file/field and what was expected."""

from __future__ import annotations


class OAKitError(ValueError):
    """A user-facing input error; its message is one line: ``<file or field>: <what was wrong>; expected <what>``."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
