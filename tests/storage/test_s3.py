"""S3Storage against a real moto S3 server: the conformance suite plus S3-specific behaviour."""

from __future__ import annotations

import urllib.request
import uuid
from typing import Any

import pytest

from imagestudio.storage import ObjectNotFound, S3Storage, StorageError, storage_from_url

from .conformance import StorageConformance

ACCESS_KEY = "AKIDSTUDIOTEST"
SECRET_KEY = "studio-test-secret"


def _bucket_name() -> str:
    return f"studio-{uuid.uuid4().hex[:20]}"


def _make_storage(endpoint: str, **overrides: Any) -> S3Storage:
    arguments: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "create_bucket": True,
    }
    arguments.update(overrides)
    bucket = arguments.pop("bucket", None) or _bucket_name()
    return S3Storage(bucket, **arguments)


@pytest.fixture(scope="session")
def shared_storages(moto_endpoint: str) -> dict[str, S3Storage]:
    # Building a boto3 client costs a tenth of a second; reuse one per prefix and empty its
    # bucket between tests instead.
    return {}


@pytest.fixture(params=["", "studio/data"], ids=["no-prefix", "prefixed"])
def storage(
    request: pytest.FixtureRequest, moto_endpoint: str, shared_storages: dict[str, S3Storage]
) -> S3Storage:
    prefix: str = request.param
    if prefix not in shared_storages:
        shared_storages[prefix] = _make_storage(moto_endpoint, prefix=prefix)
    shared = shared_storages[prefix]
    paginator = shared.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=shared.bucket):
        for item in page.get("Contents", []):
            shared.client.delete_object(Bucket=shared.bucket, Key=item["Key"])
    return shared


class TestS3StorageConformance(StorageConformance):
    serves_urls = True


def _capture_authorization(storage: S3Storage) -> list[str]:
    """Record the Authorization header of every request the client sends."""
    seen: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        header = request.headers.get("Authorization", "")
        seen.append(header.decode() if isinstance(header, bytes) else header)

    storage.client.meta.events.register("before-send.s3", before_send)
    return seen


def test_content_type_is_stored(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint)
    storage.put("outputs/gen-1/0.webp", b"RIFF....WEBP", "image/webp")
    head = storage.client.head_object(Bucket=storage.bucket, Key="outputs/gen-1/0.webp")
    assert head["ContentType"] == "image/webp"
    with urllib.request.urlopen(storage.url("outputs/gen-1/0.webp"), timeout=10) as response:
        assert response.headers["Content-Type"] == "image/webp"


def test_prefixes_isolate_storages_sharing_a_bucket(moto_endpoint: str) -> None:
    first = _make_storage(moto_endpoint, prefix="tenant-a")
    second = _make_storage(moto_endpoint, bucket=first.bucket, prefix="/tenant-b/")
    first.put("outputs/0.png", b"a", "image/png")
    second.put("outputs/0.png", b"b", "image/png")

    assert first.get("outputs/0.png") == b"a"
    assert second.get("outputs/0.png") == b"b"
    assert list(first.list()) == ["outputs/0.png"]
    assert list(second.list("outputs/")) == ["outputs/0.png"]
    raw = first.client.list_objects_v2(Bucket=first.bucket)
    assert sorted(item["Key"] for item in raw["Contents"]) == [
        "tenant-a/outputs/0.png",
        "tenant-b/outputs/0.png",
    ]

    first.delete("outputs/0.png")
    assert second.exists("outputs/0.png")


def test_listing_follows_continuation_tokens(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint, prefix="paged")
    storage.list_page_size = 2
    keys = [f"outputs/{index}.png" for index in range(7)]
    for key in keys:
        storage.put(key, b"", "image/png")
    storage.put("other/x.png", b"", "image/png")
    seen = _capture_authorization(storage)
    assert sorted(storage.list("outputs/")) == keys
    assert len(seen) == 4  # ceil(7 / 2) pages


def test_missing_bucket_is_a_storage_error_not_a_missing_object(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint, create_bucket=False)
    with pytest.raises(StorageError, match="not reachable") as caught:
        storage.check()
    assert storage.bucket in str(caught.value)
    with pytest.raises(StorageError) as get_error:
        storage.get("outputs/0.png")
    assert not isinstance(get_error.value, ObjectNotFound)
    with pytest.raises(StorageError):
        storage.put("outputs/0.png", b"x", "image/png")
    with pytest.raises(StorageError):
        list(storage.list())


def test_ensure_bucket_is_idempotent(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint)  # creates the bucket
    storage.put("kept/object.bin", b"still here", "application/octet-stream")
    storage.ensure_bucket()
    storage.ensure_bucket()
    # The existing bucket was kept as it was: one bucket of that name, its object untouched.
    names = [bucket["Name"] for bucket in storage.client.list_buckets()["Buckets"]]
    assert names.count(storage.bucket) == 1
    assert storage.get("kept/object.bin") == b"still here"
    assert list(storage.list("")) == ["kept/object.bin"]


def test_create_bucket_outside_us_east_1_sets_the_location(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint, region="eu-west-1")
    storage.check()
    location = storage.client.get_bucket_location(Bucket=storage.bucket)
    assert location["LocationConstraint"] == "eu-west-1"


def test_url_expiry_must_be_within_sigv4_limits(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint)
    with pytest.raises(ValueError):
        storage.url("outputs/0.png", expires_in=0)
    with pytest.raises(ValueError):
        storage.url("outputs/0.png", expires_in=8 * 24 * 3600)
    url = storage.url("outputs/0.png", expires_in=120)
    assert url is not None
    assert "X-Amz-Expires=120" in url
    assert url.startswith(f"{moto_endpoint}/{storage.bucket}/outputs/0.png?")


def test_explicit_credentials_sign_requests(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint)
    seen = _capture_authorization(storage)
    storage.put("k.bin", b"v", "application/octet-stream")
    assert seen
    assert all(header.startswith("AWS4-HMAC-SHA256 Credential=AKIDSTUDIOTEST/") for header in seen)


def test_storage_url_builds_a_working_s3_storage(moto_endpoint: str) -> None:
    bucket = _bucket_name()
    storage = storage_from_url(
        f"s3://{bucket}/studio?endpoint_url={moto_endpoint}&region=us-east-1"
        f"&access_key=AKIDFROMURL&secret_key=url-secret&create_bucket=true"
    )
    assert isinstance(storage, S3Storage)
    seen = _capture_authorization(storage)
    storage.put("outputs/0.png", b"from url", "image/png")
    assert storage.get("outputs/0.png") == b"from url"
    assert all("Credential=AKIDFROMURL/" in header for header in seen)
    raw = storage.client.get_object(Bucket=bucket, Key="studio/outputs/0.png")
    assert raw["Body"].read() == b"from url"


def test_storage_url_without_keys_uses_the_environment(moto_endpoint: str) -> None:
    storage = storage_from_url(f"s3://{_bucket_name()}?endpoint_url={moto_endpoint}&create_bucket=1")
    assert isinstance(storage, S3Storage)
    seen = _capture_authorization(storage)
    storage.put("k.bin", b"v", "application/octet-stream")
    assert seen
    assert all("Credential=AKIDFROMENVIRONMENT/" in header for header in seen)


def test_sweep_aborts_unfinished_multipart_uploads_under_the_prefix(moto_endpoint: str) -> None:
    storage = _make_storage(moto_endpoint, prefix="studio")
    client = storage.client
    ours = client.create_multipart_upload(Bucket=storage.bucket, Key="studio/outputs/gen-1/0.png")
    client.upload_part(Bucket=storage.bucket, Key="studio/outputs/gen-1/0.png", UploadId=ours["UploadId"],
                       PartNumber=1, Body=b"half an image")  # fmt: skip
    not_ours = client.create_multipart_upload(Bucket=storage.bucket, Key="elsewhere/0.png")
    storage.put("outputs/gen-1/1.png", b"complete", "image/png")

    def open_uploads() -> set[str]:
        uploads = client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
        return {upload["UploadId"] for upload in uploads}

    # moto reports every upload as initiated on 2010-11-10, so the age is checked on the local
    # backend; here: only uploads under the prefix go, and finished objects stay.
    assert storage.sweep_incomplete(older_than_seconds=3600) == 1
    assert open_uploads() == {not_ours["UploadId"]}
    assert storage.get("outputs/gen-1/1.png") == b"complete"
    assert storage.sweep_incomplete(older_than_seconds=0) == 0
