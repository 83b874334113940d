"""Object storage for outputs, uploads and thumbnails, chosen by a URL (IMAGESTUDIO_STORAGE_URL)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from imagestudio.storage.base import (
    InvalidKey,
    ObjectNotFound,
    Storage,
    StorageError,
    check_key,
)
from imagestudio.storage.local import LocalStorage

if TYPE_CHECKING:
    from imagestudio.storage.s3 import S3Storage

__all__ = [
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageError",
    "check_key",
    "storage_from_url",
]


def __getattr__(name: str) -> Any:
    # boto3 takes a noticeable while to import; only deployments using S3 pay for it.
    if name == "S3Storage":
        from imagestudio.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_S3_PARAMETERS = ("endpoint_url", "region", "access_key", "secret_key", "create_bucket")
# Current AWS naming rules; S3-compatible servers follow the same ones.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def storage_from_url(url: str) -> Storage:
    """Build a storage backend from a URL.

    - ``/abs/path``, ``relative/path`` or ``file:///abs/path``: LocalStorage rooted there.
    - ``s3://bucket/optional/prefix?endpoint_url=...&region=...``: S3Storage. Credentials come from
      the standard AWS environment and boto3 chain, or from ``access_key`` and ``secret_key`` query
      parameters (for S3-compatible servers); ``create_bucket=true`` creates a missing bucket.

    Raises ValueError naming what is wrong with a URL it cannot use.
    """
    url = url.strip()
    if not url:
        raise ValueError("the storage URL is empty; give a directory path, file:///path or s3://bucket")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _local_from_url(url)
    if scheme == "s3":
        return _s3_from_url(url)
    if "://" in url:
        raise ValueError(f"unsupported storage URL scheme {parts.scheme!r} in {url!r}; use file:// or s3://")
    return LocalStorage(Path(url).expanduser())


def _local_from_url(url: str) -> LocalStorage:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file storage URL {url!r} names host {parts.netloc!r}; use an absolute path: file:///data/storage"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"file storage URL {url!r} takes no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"file storage URL {url!r} needs an absolute path: file:///data/storage")
    return LocalStorage(Path(path))


def _s3_from_url(url: str) -> S3Storage:
    from imagestudio.storage.s3 import S3Storage

    parts = urlsplit(url)
    bucket = parts.netloc
    if "@" in bucket:
        raise ValueError(
            "put S3 credentials in the access_key and secret_key query parameters or the AWS "
            "environment, not before the bucket name"
        )
    if not bucket:
        raise ValueError(f"S3 storage URL {url!r} has no bucket; expected s3://bucket/optional/prefix")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ValueError(f"invalid S3 bucket name {bucket!r}: 3-63 lowercase letters, digits, dots and hyphens")
    if parts.fragment:
        raise ValueError(f"S3 storage URL {url!r} takes no fragment")

    prefix = unquote(parts.path).strip("/")
    if prefix:
        try:
            check_key(prefix)
        except InvalidKey:
            raise ValueError(f"invalid key prefix {prefix!r} in S3 storage URL") from None

    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(_S3_PARAMETERS))
    if unknown:
        raise ValueError(
            f"unknown S3 storage URL parameter(s) {', '.join(unknown)}; known: {', '.join(_S3_PARAMETERS)}"
        )
    options: dict[str, str] = {}
    for name, values in query.items():
        if len(values) != 1:
            raise ValueError(f"S3 storage URL parameter {name!r} is given more than once")
        if not values[0]:
            raise ValueError(f"S3 storage URL parameter {name!r} is empty")
        options[name] = values[0]

    endpoint_url = options.get("endpoint_url")
    if endpoint_url is not None:
        endpoint = urlsplit(endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise ValueError(f"endpoint_url {endpoint_url!r} must be an http:// or https:// URL")
    if ("access_key" in options) != ("secret_key" in options):
        raise ValueError("S3 storage URL parameters access_key and secret_key must be given together")

    create_bucket = options.get("create_bucket", "false").lower()
    if create_bucket not in _TRUE + _FALSE:
        raise ValueError(f"create_bucket must be true or false, not {options['create_bucket']!r}")

    return S3Storage(
        bucket,
        prefix=prefix,
        endpoint_url=endpoint_url,
        region=options.get("region"),
        access_key=options.get("access_key"),
        secret_key=options.get("secret_key"),
        create_bucket=create_bucket in _TRUE,
    )
