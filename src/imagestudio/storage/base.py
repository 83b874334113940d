"""The storage contract: a flat key space of immutable-ish objects (outputs, uploads, thumbnails).

Calls are synchronous; async callers run them in a worker thread. Keys are slash-separated,
relative, and never contain '..'.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol, runtime_checkable


class StorageError(Exception):
    pass


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no stored object at {key!r}")
        self.key = key


class InvalidKey(StorageError, ValueError):
    pass


def check_key(key: str) -> str:
    """Reject keys that could escape the storage root or confuse object stores."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


@runtime_checkable
class Storage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data at key, replacing what is there, atomically: readers see old or new, never half."""
        ...

    def get(self, key: str) -> bytes: ...

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """Stream an object in chunks; raises ObjectNotFound before yielding when absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove key; deleting a missing key is not an error."""
        ...

    def exists(self, key: str) -> bool: ...

    def modified_at(self, key: str) -> datetime:
        """When the object was last written (UTC); raises ObjectNotFound when absent. Cleanup uses it
        to leave alone objects too young to have their database row committed yet."""
        ...

    def url(self, key: str, expires_in: int = 3600) -> str | None:
        """A URL a browser can fetch directly, or None when content must be served by the API."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with prefix (for audits and cleanup)."""
        ...

    def sweep_incomplete(self, older_than_seconds: float) -> int:
        """Remove what interrupted writes left behind (temporary files, unfinished multipart
        uploads) once older than `older_than_seconds`, so a live write is never touched.
        Returns how many were removed."""
        ...

    def check(self) -> None:
        """Raise StorageError when the backend is unreachable or not writable (readiness)."""
        ...
