"""`Closeable`: the context-manager protocol shared by every io object that holds a file or a
decoder (frame sources, live streams, writers)."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TypeVar

_Self = TypeVar("_Self", bound="Closeable")


class Closeable(abc.ABC):
    """``with obj: ...`` returns ``obj`` and calls :meth:`close` on the way out, error or not.

    A writer that must discard its output when the block raises overrides ``__exit__``
    (see :class:`~sam2kit.io.video_writer.VideoWriter`).
    """

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the object holds; safe to call twice."""

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
