"""storage_from_url: which backend a configuration URL builds, and which URLs it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagestudio.storage import LocalStorage, S3Storage, storage_from_url


def test_file_url_builds_local_storage(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://{tmp_path}/data")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve() / "data"


def test_file_url_with_localhost_and_percent_escapes(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://localhost{tmp_path}/my%20data")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve() / "my data"


def test_plain_absolute_path_builds_local_storage(tmp_path: Path) -> None:
    storage = storage_from_url(f"  {tmp_path}/store  ")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve() / "store"


def test_plain_relative_path_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = storage_from_url("data/storage")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path.resolve() / "data" / "storage"


def test_a_local_storage_from_a_url_works(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://{tmp_path}/s")
    storage.put("outputs/0.png", b"zero", "image/png")
    assert (tmp_path / "s" / "outputs" / "0.png").read_bytes() == b"zero"


def test_s3_url_with_prefix_and_parameters() -> None:
    storage = storage_from_url(
        "s3://studio-assets/prod/images/?endpoint_url=http://minio.internal:9000&region=eu-central-1"
        "&access_key=AKIDEXAMPLE&secret_key=abc%2Bdef"
    )
    assert isinstance(storage, S3Storage)
    assert storage.bucket == "studio-assets"
    assert storage.prefix == "prod/images/"
    assert storage.endpoint_url == "http://minio.internal:9000"
    assert storage.region == "eu-central-1"
    credentials = storage.client._request_signer._credentials  # the only place botocore keeps them
    assert (credentials.access_key, credentials.secret_key) == ("AKIDEXAMPLE", "abc+def")


def test_s3_url_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    storage = storage_from_url("s3://studio-assets")
    assert isinstance(storage, S3Storage)
    assert storage.prefix == ""
    assert storage.endpoint_url is None
    assert storage.region == "us-west-2"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("gs://bucket/prefix", "unsupported storage URL scheme 'gs'"),
        ("http://example.com/storage", "unsupported storage URL scheme 'http'"),
        ("file://server/share", "names host 'server'"),
        ("file:relative/path", "absolute path"),
        ("file:///data?mode=x", "no query"),
        ("s3://", "no bucket"),
        ("s3:bucket", "no bucket"),
        ("s3://Upper_Case", "invalid S3 bucket name"),
        ("s3://ab", "invalid S3 bucket name"),
        ("s3://a..b", "invalid S3 bucket name"),
        ("s3://bucket:9000", "invalid S3 bucket name"),
        ("s3://AKID:secret@bucket", "access_key and secret_key query parameters"),
        ("s3://bucket/a/../b", "invalid key prefix"),
        ("s3://bucket/a//b", "invalid key prefix"),
        ("s3://bucket#frag", "no fragment"),
        ("s3://bucket?endpoint=http://x", "unknown S3 storage URL parameter(s) endpoint"),
        ("s3://bucket?region=a&region=b", "more than once"),
        ("s3://bucket?region=", "'region' is empty"),
        ("s3://bucket?access_key=AKID", "must be given together"),
        ("s3://bucket?secret_key=s", "must be given together"),
        ("s3://bucket?endpoint_url=ftp://host", "http:// or https://"),
        ("s3://bucket?endpoint_url=localhost:9000", "http:// or https://"),
        ("s3://bucket?create_bucket=maybe", "create_bucket must be true or false"),
    ],
)
def test_bad_urls_raise_value_error(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        storage_from_url(url)
    assert message in str(caught.value)


def test_s3_storage_rejects_half_credentials_and_bad_prefixes() -> None:
    with pytest.raises(ValueError, match="together"):
        S3Storage("bucket", access_key="AKID")
    with pytest.raises(ValueError):
        S3Storage("bucket", prefix="a/../b")
    with pytest.raises(ValueError, match="bucket name is required"):
        S3Storage("")
