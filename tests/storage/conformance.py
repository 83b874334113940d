"""The storage conformance suite: every backend's test module subclasses StorageConformance and
provides a ``storage`` fixture holding an empty store."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from imagestudio.storage import InvalidKey, ObjectNotFound, Storage

INVALID_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("../outside.png", id="dotdot-leading"),
    pytest.param("outputs/../../outside.png", id="dotdot-inner"),
    pytest.param("outputs/..", id="dotdot-trailing"),
    pytest.param("outputs//0.png", id="empty-segment"),
    pytest.param("outputs/", id="trailing-slash"),
    pytest.param("./outputs/0.png", id="dot-segment"),
    pytest.param("outputs\\0.png", id="backslash"),
    pytest.param("outputs/0\x00.png", id="nul"),
]

KEY_OPERATIONS: dict[str, Callable[[Storage, str], object]] = {
    "put": lambda storage, key: storage.put(key, b"data", "application/octet-stream"),
    "get": lambda storage, key: storage.get(key),
    "open": lambda storage, key: storage.open(key),
    "delete": lambda storage, key: storage.delete(key),
    "exists": lambda storage, key: storage.exists(key),
    "url": lambda storage, key: storage.url(key),
}


def _uniform_payload(fill: int, size: int) -> bytes:
    return bytes([fill]) * size


class StorageConformance:
    """Behaviour every Storage implementation must show.

    Subclasses set ``serves_urls``: whether the backend hands out URLs a browser fetches directly
    (True) or leaves serving content to the API (False, url() is None).
    """

    serves_urls: bool

    # -- contract ---------------------------------------------------------------------------------

    def test_implements_the_protocol(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)

    # -- put / get --------------------------------------------------------------------------------

    def test_binary_round_trip(self, storage: Storage) -> None:
        data = bytes(range(256)) * 64 + os.urandom(4096) + b"\r\n\x00\xff"
        storage.put("outputs/gen-1/0.png", data, "image/png")
        assert storage.get("outputs/gen-1/0.png") == data

    def test_empty_round_trip(self, storage: Storage) -> None:
        storage.put("uploads/empty.bin", b"", "application/octet-stream")
        assert storage.exists("uploads/empty.bin")
        assert storage.get("uploads/empty.bin") == b""
        assert list(storage.open("uploads/empty.bin")) == []

    def test_five_megabyte_round_trip(self, storage: Storage) -> None:
        data = os.urandom(5 * 1024 * 1024)
        storage.put("outputs/big.png", data, "image/png")
        assert storage.get("outputs/big.png") == data

    def test_unicode_and_mixed_case_keys_are_preserved(self, storage: Storage) -> None:
        key = "uploads/Ünïcode Name (1).PNG"
        storage.put(key, b"unicode", "image/png")
        assert storage.get(key) == b"unicode"
        assert list(storage.list("uploads/")) == [key]
        assert not storage.exists("uploads/ünïcode name (1).png")

    def test_overwrite_replaces_the_object(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"first version, longer than the second", "image/png")
        storage.put("outputs/gen-1/0.png", b"second", "image/png")
        assert storage.get("outputs/gen-1/0.png") == b"second"
        assert list(storage.list("outputs/")) == ["outputs/gen-1/0.png"]

    def test_sibling_and_nested_keys_are_independent(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        storage.put("outputs/gen-1/1.png", b"one", "image/png")
        storage.put("outputs/gen-1/thumbs/0.webp", b"thumb", "image/webp")
        assert storage.get("outputs/gen-1/0.png") == b"zero"
        assert storage.get("outputs/gen-1/1.png") == b"one"
        assert storage.get("outputs/gen-1/thumbs/0.webp") == b"thumb"

    # -- open -------------------------------------------------------------------------------------

    def test_open_streams_the_same_bytes_in_chunks(self, storage: Storage) -> None:
        data = os.urandom(200_000)
        storage.put("outputs/stream.png", data, "image/png")
        chunks = list(storage.open("outputs/stream.png", chunk_size=65536))
        assert b"".join(chunks) == data
        assert len(chunks) >= 4
        assert all(0 < len(chunk) <= 65536 for chunk in chunks)

    def test_open_honours_a_small_chunk_size(self, storage: Storage) -> None:
        data = os.urandom(10_000)
        storage.put("outputs/small-chunks.png", data, "image/png")
        chunks = list(storage.open("outputs/small-chunks.png", chunk_size=1000))
        assert b"".join(chunks) == data
        assert all(0 < len(chunk) <= 1000 for chunk in chunks)

    def test_open_can_be_abandoned_and_the_store_keeps_working(self, storage: Storage) -> None:
        data = os.urandom(300_000)
        storage.put("outputs/abandoned.png", data, "image/png")
        for _ in range(3):
            stream = storage.open("outputs/abandoned.png", chunk_size=1024)
            assert next(iter(stream)) == data[:1024]
            stream.close()  # type: ignore[attr-defined]
        assert storage.get("outputs/abandoned.png") == data

    def test_open_rejects_a_non_positive_chunk_size(self, storage: Storage) -> None:
        storage.put("outputs/x.png", b"x", "image/png")
        with pytest.raises(ValueError):
            storage.open("outputs/x.png", chunk_size=0)

    # -- missing objects --------------------------------------------------------------------------

    def test_get_missing_key_raises_object_not_found(self, storage: Storage) -> None:
        with pytest.raises(ObjectNotFound) as caught:
            storage.get("outputs/missing.png")
        assert caught.value.key == "outputs/missing.png"

    def test_open_missing_key_raises_before_iterating(self, storage: Storage) -> None:
        with pytest.raises(ObjectNotFound) as caught:
            storage.open("outputs/missing.png")
        assert caught.value.key == "outputs/missing.png"

    def test_a_key_prefix_of_stored_keys_is_not_an_object(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        assert not storage.exists("outputs/gen-1")
        with pytest.raises(ObjectNotFound):
            storage.get("outputs/gen-1")
        with pytest.raises(ObjectNotFound):
            storage.open("outputs/gen-1")

    # -- delete / exists --------------------------------------------------------------------------

    def test_delete_removes_and_is_idempotent(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        storage.put("outputs/gen-1/1.png", b"one", "image/png")
        storage.delete("outputs/gen-1/0.png")
        assert not storage.exists("outputs/gen-1/0.png")
        with pytest.raises(ObjectNotFound):
            storage.get("outputs/gen-1/0.png")
        storage.delete("outputs/gen-1/0.png")
        storage.delete("never/stored.png")
        assert storage.get("outputs/gen-1/1.png") == b"one"

    def test_a_deleted_key_can_be_written_again(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        storage.delete("outputs/gen-1/0.png")
        storage.put("outputs/gen-1/0.png", b"again", "image/png")
        assert storage.get("outputs/gen-1/0.png") == b"again"

    def test_exists(self, storage: Storage) -> None:
        assert not storage.exists("outputs/gen-1/0.png")
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        assert storage.exists("outputs/gen-1/0.png")
        assert not storage.exists("outputs/gen-1/1.png")

    def test_modified_at_tells_when_an_object_was_written(self, storage: Storage) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        written = storage.modified_at("outputs/gen-1/0.png")
        assert written.tzinfo is not None
        assert before <= written <= datetime.now(UTC) + timedelta(seconds=5)
        with pytest.raises(ObjectNotFound):
            storage.modified_at("outputs/gen-1/1.png")

    # -- list -------------------------------------------------------------------------------------

    def test_list_by_prefix(self, storage: Storage) -> None:
        keys = [
            "outputs/gen-1/0.png",
            "outputs/gen-1/1.png",
            "outputs/gen-2/0.png",
            "outputs-archive/old.png",
            "uploads/u1.png",
            "thumbnails/gen-1/0.webp",
        ]
        for key in keys:
            storage.put(key, key.encode(), "application/octet-stream")
        assert sorted(storage.list()) == sorted(keys)
        assert sorted(storage.list("")) == sorted(keys)
        assert sorted(storage.list("outputs/")) == [
            "outputs/gen-1/0.png",
            "outputs/gen-1/1.png",
            "outputs/gen-2/0.png",
        ]
        assert sorted(storage.list("outputs")) == sorted(
            ["outputs-archive/old.png", "outputs/gen-1/0.png", "outputs/gen-1/1.png", "outputs/gen-2/0.png"]
        )
        assert sorted(storage.list("outputs/gen-1/")) == ["outputs/gen-1/0.png", "outputs/gen-1/1.png"]
        assert sorted(storage.list("outputs/gen-")) == [
            "outputs/gen-1/0.png",
            "outputs/gen-1/1.png",
            "outputs/gen-2/0.png",
        ]
        assert sorted(storage.list("outputs/gen-1/1")) == ["outputs/gen-1/1.png"]
        assert list(storage.list("nothing/")) == []
        assert list(storage.list("outputs/gen-3")) == []

    def test_list_reflects_deletes(self, storage: Storage) -> None:
        storage.put("outputs/gen-1/0.png", b"zero", "image/png")
        storage.put("outputs/gen-1/1.png", b"one", "image/png")
        storage.delete("outputs/gen-1/0.png")
        assert list(storage.list("outputs/")) == ["outputs/gen-1/1.png"]
        storage.delete("outputs/gen-1/1.png")
        assert list(storage.list()) == []

    @pytest.mark.parametrize("prefix", ["/outputs", "../", "outputs/../", "outputs//", "a\\b", "a\x00"])
    def test_list_rejects_invalid_prefixes(self, storage: Storage, prefix: str) -> None:
        with pytest.raises(InvalidKey):
            list(storage.list(prefix))

    # -- invalid keys -----------------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_are_rejected(self, storage: Storage, key: str) -> None:
        for operation, call in KEY_OPERATIONS.items():
            with pytest.raises(InvalidKey):
                call(storage, key)
                pytest.fail(f"{operation} accepted the invalid key {key!r}")
        assert list(storage.list()) == []

    def test_invalid_key_errors_are_value_errors(self, storage: Storage) -> None:
        with pytest.raises(ValueError):
            storage.put("../escape", b"x", "image/png")

    # -- url --------------------------------------------------------------------------------------

    def test_url_contract(self, storage: Storage) -> None:
        data = os.urandom(3000)
        storage.put("outputs/gen-1/0.png", data, "image/png")
        url = storage.url("outputs/gen-1/0.png", expires_in=600)
        if not self.serves_urls:
            assert url is None
            assert storage.url("outputs/gen-1/missing.png") is None
            return
        assert isinstance(url, str)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == data
        missing = storage.url("outputs/gen-1/missing.png")
        assert missing is not None
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(missing, timeout=10)
        assert caught.value.code in (403, 404)

    # -- readiness --------------------------------------------------------------------------------

    def test_check_passes_and_leaves_nothing_behind(self, storage: Storage) -> None:
        storage.check()
        storage.check()
        assert list(storage.list()) == []

    # -- concurrency ------------------------------------------------------------------------------

    def test_concurrent_writers_never_leave_a_torn_object(self, storage: Storage) -> None:
        key = "outputs/contended.png"
        size = 256 * 1024
        writers, writes_each = 4, 6
        storage.put(key, _uniform_payload(0, size), "image/png")
        start = threading.Barrier(writers + 1)
        writing = threading.Event()
        writing.set()

        def write(writer: int) -> None:
            start.wait()
            for round_ in range(writes_each):
                fill = 1 + writer * writes_each + round_
                storage.put(key, _uniform_payload(fill, size), "image/png")

        def read() -> int:
            start.wait()
            reads = 0
            while writing.is_set() or reads < 3:
                data = storage.get(key)
                assert len(data) == size, "a reader saw a partial object"
                assert data == _uniform_payload(data[0], size), "a reader saw a mix of two writes"
                reads += 1
            return reads

        with ThreadPoolExecutor(max_workers=writers + 1) as pool:
            reader = pool.submit(read)
            writes = [pool.submit(write, writer) for writer in range(writers)]
            for future in writes:
                future.result()
            writing.clear()
            assert reader.result() >= 3

        final = storage.get(key)
        assert len(final) == size
        assert final == _uniform_payload(final[0], size)
        assert 1 <= final[0] <= writers * writes_each
        assert list(storage.list()) == [key]
