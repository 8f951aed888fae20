"""Exceptions that every layer may raise and every front end may report.

Library messages name the Python parameter at fault (``overlay``, ``max_frames``), never a command
line flag: a front end (the CLI, a service) maps :attr:`ArgumentError.argument` to its own spelling.
"""

from __future__ import annotations

__all__ = ["ArgumentError"]


class ArgumentError(ValueError):
    """An argument of a public function is unusable.

    Attributes:
        argument: the name of the parameter at fault (``"overlay"``, ``"max_frames"``, ...). A message
            that starts with this name talks about the parameter itself (``"overlay must be a video
            file ..."``), so a front end may put its own option name there.
    """

    def __init__(self, message: str, *, argument: str) -> None:
        super().__init__(message)
        self.argument = argument
