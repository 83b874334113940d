"""LocalStorage's durability: every directory that gained an entry is fsynced after the object's
file, before `put` returns, and writers at the same time share those fsyncs (group commit)."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

import pytest

from imagestudio.storage import LocalStorage, StorageError, dirsync


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    synced: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        kind = "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def test_new_directories_are_fsynced_with_the_object_after_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "root")
    synced = _record_fsyncs(monkeypatch)
    storage.put("outputs/gen-1/a1/0.png", b"zero", "image/png")
    root = storage.root
    # The file first (so it is complete before its name is), then each directory that gained an
    # entry: the root (outputs), outputs (gen-1), gen-1 (a1) and a1 (the object itself).
    assert synced[0][0] == "file"
    assert sorted(path for kind, path in synced[1:] if kind == "directory") == sorted(
        str(path) for path in (root, root / "outputs", root / "outputs/gen-1", root / "outputs/gen-1/a1")
    )
    assert [kind for kind, _ in synced[1:]] == ["directory"] * 4

    synced.clear()
    storage.put("outputs/gen-1/a1/1.png", b"one", "image/png")
    # An existing directory: only the one that gained the new name.
    assert synced == [("file", synced[0][1]), ("directory", str(root / "outputs/gen-1/a1"))]


def test_writers_at_the_same_time_share_directory_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put("outputs/warm.png", b"w", "image/png")
    leader_inside, release_leader = threading.Event(), threading.Event()
    real = dirsync.fsync_directory
    synced: list[Path] = []

    def held_fsync(directory: Path) -> None:
        if not leader_inside.is_set():
            leader_inside.set()
            assert release_leader.wait(30)
        synced.append(directory)
        real(directory)

    monkeypatch.setattr(dirsync, "fsync_directory", held_fsync)
    rounds_before = storage.directories.rounds
    done: list[str] = []

    def put(key: str) -> None:
        storage.put(key, b"data", "image/png")
        done.append(key)

    leader = threading.Thread(target=put, args=("outputs/leader.png",))
    leader.start()
    assert leader_inside.wait(30)
    followers = [threading.Thread(target=put, args=(f"outputs/gen-{n}/0.png",)) for n in range(3)]
    for thread in followers:
        thread.start()
    # While the leader's round syncs, the others wait: none has returned before its directory is synced.
    followers[0].join(0.3)
    assert done == []
    release_leader.set()
    for thread in [leader, *followers]:
        thread.join(30)
    assert sorted(done) == sorted(["outputs/leader.png", *(f"outputs/gen-{n}/0.png" for n in range(3))])
    # Two rounds for four writers; `outputs` (which gained three new folders) synced once for the three.
    assert storage.directories.rounds - rounds_before == 2
    outputs = storage.root / "outputs"
    assert synced.count(outputs) == 2  # the leader's round, then the followers' shared one
    assert all(synced.count(outputs / f"gen-{n}") == 1 for n in range(3))


def test_a_directory_that_cannot_be_made_durable_fails_the_put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "root")
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="could not make it durable"):
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    monkeypatch.undo()
    # The next writer is not stuck behind the failed round.
    storage.put("outputs/gen-1/1.png", b"one", "image/png")
    assert storage.get("outputs/gen-1/1.png") == b"one"
