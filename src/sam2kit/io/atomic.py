"""Atomic file writes and JSON helpers.

Every writer in `sam2kit.io` goes through `atomic_path`: the data is written to a hidden
temporary file in the destination folder and renamed over the destination only once it is
complete, so readers never see a half-written file and a failing writer leaves nothing behind.
This protects against crashes of the writer, not against power loss (no fsync unless asked).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sam2kit.io.closeable import Closeable


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`, on error delete it.

    The temporary name keeps the extension of `path` (".<stem>.<random>.tmp<suffix>"), so tools
    that infer the format from the extension (PIL, PyAV) work on it. Parent folders are created.

    Example:
        with atomic_path("out/mask.png") as temporary:
            Image.fromarray(array).save(temporary)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"
    try:
        yield temporary
        if fsync:
            descriptor = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> Path:
    """Write `data` (bytes, or str encoded as UTF-8) to `path` atomically; returns the Path."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write expects bytes or str, got {type(data).__name__}")
    with atomic_path(path, fsync=fsync) as temporary:
        temporary.write_bytes(data)
    return path


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` hook: numpy / torch scalars and arrays, paths."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def save_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write `obj` as JSON (UTF-8, `indent` spaces) atomically; numpy values are converted."""
    text = json.dumps(obj, indent=indent, default=json_default, ensure_ascii=False)
    return atomic_write(path, text + "\n")


class JsonlWriter(Closeable):
    """Write one JSON object per line to a text stream (e.g. sys.stdout) or to a file path.

    Each record is flushed as it is written, so a consumer can follow the output live. When given
    a path the file is opened (truncated) here and closed by `close()`; a stream is left open.
    """

    def __init__(self, target: str | os.PathLike | IO[str], *, flush: bool = True) -> None:
        if isinstance(target, (str, os.PathLike)):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = open(target, "w", encoding="utf-8")  # noqa: SIM115
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._flush = flush

    def write(self, record: Any) -> None:
        """Append one record as a line of compact JSON."""
        self._file.write(json.dumps(record, default=json_default, separators=(",", ":")) + "\n")
        if self._flush:
            self._file.flush()

    def close(self) -> None:
        if self._owns_file and not self._file.closed:
            self._file.close()
