"""Pieces shared by the storage backends: prefix validation and a closable chunk iterator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType

from imagestudio.storage.base import InvalidKey, check_key


def check_prefix(prefix: str) -> str:
    """Validate a listing prefix: every complete segment must be a valid key segment.

    A prefix may end mid-segment ("outputs/01") or on a separator ("outputs/"), so it is checked
    as if a final segment were appended to it.
    """
    if not prefix:
        return prefix
    try:
        check_key(prefix + "x")
    except InvalidKey:
        raise InvalidKey(f"invalid storage prefix {prefix!r}") from None
    return prefix


class ChunkStream(Iterator[bytes]):
    """Iterate over a readable source in chunks and release it when exhausted, closed or collected.

    Backends open the source eagerly (so a missing object fails at the call, not at the first
    chunk) and hand it to this wrapper; a generator would hold the source open until garbage
    collection if the caller never started iterating.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], None],
        chunk_size: int,
        translate_error: Callable[[Exception], Exception] | None = None,
    ) -> None:
        if chunk_size <= 0:
            close()
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._read = read
        self._close = close
        self._chunk_size = chunk_size
        self._translate_error = translate_error
        self._closed = False

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._read(self._chunk_size)
        except Exception as error:
            self.close()
            if self._translate_error is None:
                raise
            raise self._translate_error(error) from error
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Never let a dropped stream leak a file descriptor or a pooled HTTP connection.
        try:
            self.close()
        except Exception:
            pass
