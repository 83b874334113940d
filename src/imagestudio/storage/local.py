"""Local filesystem storage: one file per key under a root directory, written atomically."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from imagestudio.storage._support import ChunkStream, check_prefix
from imagestudio.storage.base import InvalidKey, ObjectNotFound, StorageError, check_key
from imagestudio.storage.dirsync import DirectorySync

# Temporary files live next to their final path so os.replace stays on one filesystem; the
# prefix marks them so listings skip them and keys can never collide with them.
TEMP_PREFIX = ".imagestudio-tmp-"

_PUT_ATTEMPTS = 3


class LocalStorage:
    """Objects stored as files under ``root``, created on demand.

    Writes go to a temporary file in the destination directory, are flushed and fsynced, then
    renamed over the destination, so a reader or a crash sees the old object or the new one, never
    a torn one. Then every directory that gained an entry (the destination's, and the parents of
    directories created for it) is fsynced, after all of the changes and shared with writers
    running at the same time (`dirsync.DirectorySync`); `put` returns once the object is durable.
    Keys resolve strictly under the root: '..' and symlinks leading outside it are refused.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.directories = DirectorySync()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- the Storage protocol -------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # The content type is not kept: the assets table records it and the API serves it.
        path = self._resolve(key)
        # Every directory that gained an entry, over all attempts (one may have been pruned between).
        changed: list[Path] = []
        for attempt in range(_PUT_ATTEMPTS):
            try:
                changed += self._ensure_directory(path.parent, key)
                self._write_atomically(path, data, key)
            except FileNotFoundError:
                # A concurrent delete pruned the (empty) directory between our mkdir and the
                # temp file's creation; create it again.
                if attempt == _PUT_ATTEMPTS - 1:
                    raise StorageError(f"could not store {key!r}: its directory kept disappearing") from None
                continue
            try:
                self.directories.sync([path.parent, *changed])
            except OSError as error:
                raise StorageError(f"stored {key!r} but could not make it durable: {error}") from error
            return

    def get(self, key: str) -> bytes:
        fd = self._open_for_read(key)
        with os.fdopen(fd, "rb") as file:
            try:
                return file.read()
            except OSError as error:
                raise StorageError(f"could not read {key!r}: {error}") from error

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        fd = self._open_for_read(key)
        file = os.fdopen(fd, "rb", buffering=0)

        def translate(error: Exception) -> Exception:
            return StorageError(f"could not read {key!r}: {error}")

        return ChunkStream(file.read, file.close, chunk_size, translate)

    def delete(self, key: str) -> None:
        path = self._resolve(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as error:
            raise StorageError(f"could not delete {key!r}: {error}") from error
        self._prune_empty_directories(path.parent)

    def exists(self, key: str) -> bool:
        path = self._resolve(key)
        try:
            return stat.S_ISREG(path.stat().st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as error:
            raise StorageError(f"could not check {key!r}: {error}") from error

    def modified_at(self, key: str) -> datetime:
        path = self._resolve(key)
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            raise StorageError(f"could not check {key!r}: {error}") from error
        if not stat.S_ISREG(status.st_mode):
            raise ObjectNotFound(key)
        return datetime.fromtimestamp(status.st_mtime, UTC)

    def url(self, key: str, expires_in: int = 3600) -> str | None:
        self._resolve(key)
        return None

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        directory_key, _, name_start = prefix.rpartition("/")
        base = (self.root / directory_key).resolve() if directory_key else self.root
        if not base.is_relative_to(self.root):
            raise InvalidKey(f"storage prefix {prefix!r} resolves outside the storage root")
        key_base = f"{directory_key}/" if directory_key else ""
        return self._walk(base, key_base, name_start)

    def sweep_incomplete(self, older_than_seconds: float) -> int:
        # A process killed between writing a temp file and renaming it leaves the temp file behind.
        cutoff = time.time() - older_than_seconds
        removed = 0
        for directory, _subdirectories, files in os.walk(self.root):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(directory) / name
                try:
                    if path.lstat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as error:
                    raise StorageError(f"could not remove the leftover {path}: {error}") from error
        return removed

    def check(self) -> None:
        probe = self.root / f"{TEMP_PREFIX}probe-{secrets.token_hex(8)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as error:
            raise StorageError(f"local storage at {self.root} is not writable: {error}") from error

    # -- helpers --------------------------------------------------------------------------------

    def _resolve(self, key: str) -> Path:
        check_key(key)
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise InvalidKey(f"invalid storage key {key!r}: {TEMP_PREFIX!r} is reserved")
        resolved = (self.root / key).resolve()
        if not resolved.is_relative_to(self.root) or resolved == self.root:
            raise InvalidKey(f"storage key {key!r} resolves outside the storage root")
        return resolved

    def _open_for_read(self, key: str) -> int:
        path = self._resolve(key)
        try:
            # O_NOFOLLOW: the path was resolved a moment ago; refuse a symlink swapped in since.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise InvalidKey(f"storage key {key!r} is a symbolic link") from None
            raise StorageError(f"could not open {key!r}: {error}") from error
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ObjectNotFound(key)
        return fd

    def _ensure_directory(self, directory: Path, key: str) -> list[Path]:
        """Create the missing directories one level at a time; answers the parents that gained one
        (to be fsynced with the object, so new directories survive a crash)."""
        if directory.is_dir():
            return []
        changed: list[Path] = []
        current = self.root
        missing = directory.relative_to(self.root).parts
        self.root.mkdir(parents=True, exist_ok=True)
        for part in missing:
            parent, current = current, current / part
            try:
                current.mkdir()
            except FileExistsError:
                if not current.is_dir():
                    raise StorageError(
                        f"cannot store {key!r}: {current.relative_to(self.root)} is a stored object"
                    ) from None
                continue
            except NotADirectoryError:
                raise StorageError(f"cannot store {key!r}: a parent path is a stored object") from None
            except FileNotFoundError:
                raise
            except OSError as error:
                raise StorageError(f"cannot create a directory for {key!r}: {error}") from error
            changed.append(parent)
        return changed

    def _write_atomically(self, path: Path, data: bytes, key: str) -> None:
        temp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, 0o666)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise StorageError(f"could not store {key!r}: {error}") from error
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException as error:
            temp.unlink(missing_ok=True)
            if isinstance(error, IsADirectoryError):
                raise StorageError(f"cannot store {key!r}: other objects are stored under it") from error
            if isinstance(error, OSError):
                raise StorageError(f"could not store {key!r}: {error}") from error
            raise

    def _prune_empty_directories(self, directory: Path) -> None:
        # Keys nest by generation; drop directories a delete leaves empty so the tree stays small.
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk(self, directory: Path, key_base: str, name_start: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as error:
            raise StorageError(f"could not list {directory}: {error}") from error
        for entry in entries:
            if not entry.name.startswith(name_start) or entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{key_base}{entry.name}/", "")
            elif entry.is_file(follow_symlinks=False):
                yield f"{key_base}{entry.name}"

