"""Group commit of directory fsyncs for local storage.

A new file's name lives in its directory, so an object is durable only once the file and every
directory that gained an entry for it (its own, and the parents of directories created for it)
are fsynced. Each such fsync that finds the directory changed costs a journal commit (about 7 ms
on the ext4 disk the benchmarks ran on). Writers running at the same time mostly change the same
few directories (`outputs/`, a generation's folder), so they share the fsyncs: a writer adds the
directories it changed to the round being collected; if no round is being synced it syncs this
one itself (the leader), otherwise it waits for the running round to end, and then either finds
its round synced by another leader or leads it. Nothing waits for a timer: a writer alone pays
what it paid before, and writers that arrive while one syncs are served by one round.

`sync` returns only once every directory it was given has been fsynced after the caller's change,
so `LocalStorage.put` still returns only when its object is durable.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable
from pathlib import Path


class _Round:
    __slots__ = ("directories", "error", "finished")

    def __init__(self) -> None:
        self.directories: set[Path] = set()
        self.finished = False
        self.error: BaseException | None = None


class DirectorySync:
    """Shares directory fsyncs between writers in one process (see the module docstring)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._collecting = _Round()
        self._syncing = False
        self.rounds = 0  # rounds synced, for tests and measurements
        self.fsyncs = 0

    def sync(self, directories: Iterable[Path]) -> None:
        with self._changed:
            round_ = self._collecting
            round_.directories.update(directories)
            while not round_.finished:
                if self._syncing:
                    self._changed.wait()
                    continue
                # Nobody syncs: the round being collected (ours) is led by this writer.
                self._syncing = True
                self._collecting = _Round()
                self._changed.release()
                try:
                    self._sync_round(round_)
                finally:
                    self._changed.acquire()
                    round_.finished = True
                    self._syncing = False
                    self._changed.notify_all()
        if round_.error is not None:
            raise round_.error

    def _sync_round(self, round_: _Round) -> None:
        try:
            for directory in sorted(round_.directories, key=lambda path: len(path.parts), reverse=True):
                fsync_directory(directory)
                self.fsyncs += 1
            self.rounds += 1
        except BaseException as error:
            round_.error = error
            raise


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # removed since (its objects deleted): nothing in it is left to keep
    try:
        os.fsync(fd)
    except OSError as error:
        # Some filesystems cannot fsync a directory; the rename itself is still atomic there.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
