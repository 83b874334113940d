"""LocalStorage: the conformance suite plus the filesystem-specific guarantees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagestudio.storage import InvalidKey, LocalStorage, ObjectNotFound, StorageError
from imagestudio.storage.local import TEMP_PREFIX

from .conformance import StorageConformance


@pytest.fixture
def root(tmp_path: Path) -> Path:
    # Not created up front: the storage must create its directories on demand.
    return tmp_path / "storage-root"


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


class TestLocalStorageConformance(StorageConformance):
    serves_urls = False


def test_directories_are_created_on_demand(root: Path, storage: LocalStorage) -> None:
    assert not root.exists()
    storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    assert (root / "outputs" / "gen-1" / "0.png").read_bytes() == b"zero"


def test_check_creates_the_root(root: Path, storage: LocalStorage) -> None:
    storage.check()
    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_check_fails_when_the_root_cannot_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"a file where the root should be")
    with pytest.raises(StorageError, match="not writable"):
        LocalStorage(blocker).check()


def test_a_symlinked_directory_cannot_lead_outside_the_root(tmp_path: Path, storage: LocalStorage) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    storage.check()
    (storage.root / "escape").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidKey):
        storage.put("escape/planted.png", b"planted", "image/png")
    with pytest.raises(InvalidKey):
        storage.get("escape/secret.txt")
    with pytest.raises(InvalidKey):
        storage.open("escape/secret.txt")
    with pytest.raises(InvalidKey):
        storage.delete("escape/secret.txt")
    with pytest.raises(InvalidKey):
        list(storage.list("escape/"))
    assert sorted(path.name for path in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert list(storage.list()) == []


def test_a_symlinked_file_cannot_lead_outside_the_root(tmp_path: Path, storage: LocalStorage) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    storage.put("uploads/real.png", b"real", "image/png")
    (storage.root / "uploads" / "link.png").symlink_to(outside)

    with pytest.raises(InvalidKey):
        storage.get("uploads/link.png")
    with pytest.raises(InvalidKey):
        storage.exists("uploads/link.png")
    with pytest.raises(InvalidKey):
        storage.put("uploads/link.png", b"overwrite", "image/png")
    assert outside.read_bytes() == b"secret"
    assert list(storage.list("uploads/")) == ["uploads/real.png"]


def test_a_symlink_inside_the_root_is_followed(storage: LocalStorage) -> None:
    storage.put("real/0.png", b"zero", "image/png")
    (storage.root / "alias").symlink_to(storage.root / "real", target_is_directory=True)
    assert storage.get("alias/0.png") == b"zero"


def test_a_crash_between_write_and_rename_leaves_the_old_object(storage: LocalStorage) -> None:
    storage.put("outputs/gen-1/0.png", b"old complete object", "image/png")
    # What a process killed after writing the temp file but before os.replace leaves behind.
    leftover = storage.root / "outputs" / "gen-1" / f"{TEMP_PREFIX}0123456789abcdef"
    leftover.write_bytes(b"new but half wri")

    assert storage.get("outputs/gen-1/0.png") == b"old complete object"
    assert storage.exists("outputs/gen-1/0.png")
    assert list(storage.list()) == ["outputs/gen-1/0.png"]

    storage.put("outputs/gen-1/0.png", b"new complete object", "image/png")
    assert storage.get("outputs/gen-1/0.png") == b"new complete object"
    assert list(storage.list()) == ["outputs/gen-1/0.png"]


def test_a_failed_rename_keeps_the_old_object_and_cleans_up(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put("outputs/gen-1/0.png", b"old complete object", "image/png")

    def failing_replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError, match="No space left"):
        storage.put("outputs/gen-1/0.png", b"new object", "image/png")
    monkeypatch.undo()

    assert storage.get("outputs/gen-1/0.png") == b"old complete object"
    assert sorted(path.name for path in (storage.root / "outputs" / "gen-1").iterdir()) == ["0.png"]


def test_writes_fsync_the_file_and_its_directory(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("directory" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    assert "file" in synced
    assert synced[-1] == "directory"


def test_temp_files_are_never_listed(storage: LocalStorage) -> None:
    storage.put("a/b.png", b"b", "image/png")
    for directory in (storage.root, storage.root / "a"):
        (directory / f"{TEMP_PREFIX}stale").write_bytes(b"partial")
    assert list(storage.list()) == ["a/b.png"]
    assert list(storage.list("a/")) == ["a/b.png"]


def test_keys_cannot_name_temp_files(storage: LocalStorage) -> None:
    with pytest.raises(InvalidKey):
        storage.put(f"outputs/{TEMP_PREFIX}x", b"x", "image/png")
    with pytest.raises(InvalidKey):
        storage.get(f"{TEMP_PREFIX}dir/x.png")


def test_written_files_follow_the_process_umask(storage: LocalStorage) -> None:
    previous = os.umask(0o022)
    try:
        storage.put("outputs/perm.png", b"x", "image/png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((storage.root / "outputs" / "perm.png").stat().st_mode) == 0o644


def test_a_key_cannot_sit_where_other_keys_are_nested(storage: LocalStorage) -> None:
    storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    with pytest.raises(StorageError):
        storage.put("outputs/gen-1", b"clash", "image/png")
    with pytest.raises(StorageError):
        storage.put("outputs/gen-1/0.png/nested", b"clash", "image/png")
    assert storage.get("outputs/gen-1/0.png") == b"zero"
    assert list(storage.list()) == ["outputs/gen-1/0.png"]


def test_delete_prunes_empty_directories_but_keeps_the_root(storage: LocalStorage) -> None:
    storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    storage.put("outputs/gen-2/0.png", b"zero", "image/png")
    storage.delete("outputs/gen-1/0.png")
    assert not (storage.root / "outputs" / "gen-1").exists()
    assert (storage.root / "outputs" / "gen-2").is_dir()
    storage.delete("outputs/gen-2/0.png")
    assert storage.root.is_dir()
    assert list(storage.root.iterdir()) == []


def test_deleting_a_directory_key_does_nothing(storage: LocalStorage) -> None:
    storage.put("outputs/gen-1/0.png", b"zero", "image/png")
    storage.delete("outputs/gen-1")
    assert storage.get("outputs/gen-1/0.png") == b"zero"


def test_a_directory_is_not_an_object(storage: LocalStorage) -> None:
    (storage.root / "outputs" / "empty-dir").mkdir(parents=True)
    with pytest.raises(ObjectNotFound):
        storage.get("outputs/empty-dir")
    assert list(storage.list()) == []


def test_root_given_as_a_string_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = LocalStorage("data/storage")
    storage.put("k.bin", b"v", "application/octet-stream")
    assert storage.root == (tmp_path / "data" / "storage").resolve()
    assert (tmp_path / "data" / "storage" / "k.bin").read_bytes() == b"v"


def test_sweep_removes_only_temp_files_older_than_the_age(storage: LocalStorage) -> None:
    storage.put("outputs/gen-1/0.png", b"complete", "image/png")
    stale = storage.root / "outputs" / "gen-1" / f"{TEMP_PREFIX}00000000000000aa"
    fresh = storage.root / "outputs" / f"{TEMP_PREFIX}00000000000000bb"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"a write in progress")
    an_hour_ago = stale.stat().st_mtime - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    assert storage.sweep_incomplete(older_than_seconds=600) == 1

    assert not stale.exists()
    assert fresh.exists()
    assert storage.get("outputs/gen-1/0.png") == b"complete"
    assert storage.sweep_incomplete(older_than_seconds=600) == 0


def test_sweep_of_a_missing_root_finds_nothing(tmp_path: Path) -> None:
    assert LocalStorage(tmp_path / "never-created").sweep_incomplete(older_than_seconds=0) == 0
