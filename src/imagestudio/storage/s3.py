"""S3 and S3-compatible object storage (AWS, MinIO, Ceph, R2, ...) through boto3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from imagestudio.storage._support import ChunkStream, check_prefix
from imagestudio.storage.base import ObjectNotFound, StorageError, check_key

# SigV4 presigned URLs cannot outlive seven days.
MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600

_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def _client_config(*, custom_endpoint: bool) -> Config:
    return Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 4},
        # API request threads and worker threads share one client.
        max_pool_connections=32,
        signature_version="s3v4",
        # S3-compatible servers rarely support virtual-hosted buckets on arbitrary hostnames.
        s3={"addressing_style": "path" if custom_endpoint else "auto"},
        # Several S3-compatible servers reject the newer default integrity headers; send them
        # only where the operation requires them when talking to one.
        request_checksum_calculation="when_required" if custom_endpoint else "when_supported",
        response_checksum_validation="when_required" if custom_endpoint else "when_supported",
    )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects stored in one bucket, optionally under a key prefix.

    The boto3 client is created once and shared: botocore clients are thread-safe (sessions are
    not, which is why each storage builds its own). Credentials come from the arguments when
    given, otherwise from the standard boto3 chain (environment, config files, instance roles).
    A missing key reads as ObjectNotFound; note that S3 answers 403 rather than 404 for a missing
    key when the credentials lack ListBucket, which surfaces as StorageError.
    """

    # Keys per ListObjectsV2 request; 1000 is the S3 maximum.
    list_page_size = 1000

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        create_bucket: bool = False,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        if (access_key is None) != (secret_key is None):
            raise ValueError("access_key and secret_key must be given together")
        stripped = prefix.strip("/")
        if stripped:
            check_key(stripped)
        self.bucket = bucket
        self.prefix = f"{stripped}/" if stripped else ""
        self.endpoint_url = endpoint_url
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
        )
        self.client: BaseClient = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=_client_config(custom_endpoint=endpoint_url is not None),
        )
        self.region = self.client.meta.region_name
        if create_bucket:
            self.ensure_bucket()

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (development and self-hosted servers)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._storage_error("could not inspect the bucket", error) from error
        except BotoCoreError as error:
            raise self._storage_error("could not reach the bucket", error) from error
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**arguments)
        except ClientError as error:
            if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._storage_error("could not create the bucket", error) from error
        except BotoCoreError as error:
            raise self._storage_error("could not create the bucket", error) from error

    # -- the Storage protocol -------------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        # A single PUT replaces the object atomically: readers see the old or the new body.
        object_key = self._object_key(key)
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=data,
                ContentType=content_type or "application/octet-stream",
            )
        except (ClientError, BotoCoreError) as error:
            raise self._storage_error(f"could not store {key!r}", error) from error

    def get(self, key: str) -> bytes:
        body = self._get_body(key)
        try:
            return body.read()
        except (BotoCoreError, OSError) as error:
            raise self._storage_error(f"could not read {key!r}", error) from error
        finally:
            body.close()

    def open(self, key: str, chunk_size: int = 65536) -> Iterator[bytes]:
        body = self._get_body(key)

        def translate(error: Exception) -> Exception:
            return self._storage_error(f"could not read {key!r}", error)

        return ChunkStream(body.read, body.close, chunk_size, translate)

    def delete(self, key: str) -> None:
        # S3 answers 204 for a key that is not there, so deleting twice is not an error.
        object_key = self._object_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except (ClientError, BotoCoreError) as error:
            raise self._storage_error(f"could not delete {key!r}", error) from error

    def exists(self, key: str) -> bool:
        object_key = self._object_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _error_code(error) in _MISSING_KEY_CODES:
                return False
            raise self._storage_error(f"could not check {key!r}", error) from error
        except BotoCoreError as error:
            raise self._storage_error(f"could not check {key!r}", error) from error
        return True

    def modified_at(self, key: str) -> datetime:
        object_key = self._object_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _error_code(error) in _MISSING_KEY_CODES:
                raise ObjectNotFound(key) from None
            raise self._storage_error(f"could not check {key!r}", error) from error
        except BotoCoreError as error:
            raise self._storage_error(f"could not check {key!r}", error) from error
        return head["LastModified"].astimezone(UTC)

    def url(self, key: str, expires_in: int = 3600) -> str | None:
        """A presigned GET URL; it is signed locally and does not check that the key exists."""
        if not 1 <= expires_in <= MAX_URL_EXPIRY_SECONDS:
            raise ValueError(f"expires_in must be between 1 and {MAX_URL_EXPIRY_SECONDS} seconds")
        object_key = self._object_key(key)
        try:
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=expires_in,
            )
        except BotoCoreError as error:
            raise self._storage_error(f"could not sign a URL for {key!r}", error) from error

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        return self._list(self.prefix + prefix)

    def sweep_incomplete(self, older_than_seconds: float) -> int:
        # An interrupted multipart upload keeps its parts (billed, invisible to listings) until aborted.
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        removed += self._abort_upload(upload["Key"], upload["UploadId"])
        except (ClientError, BotoCoreError) as error:
            raise self._storage_error("could not sweep unfinished uploads", error) from error
        return removed

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise self._storage_error("the bucket is not reachable", error) from error

    # -- helpers --------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _get_body(self, key: str) -> Any:
        object_key = self._object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as error:
            if _error_code(error) in _MISSING_KEY_CODES:
                raise ObjectNotFound(key) from None
            raise self._storage_error(f"could not read {key!r}", error) from error
        except BotoCoreError as error:
            raise self._storage_error(f"could not read {key!r}", error) from error
        return response["Body"]

    def _list(self, full_prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=full_prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as error:
            raise self._storage_error("could not list objects", error) from error

    def _abort_upload(self, object_key: str, upload_id: str) -> int:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
        except ClientError as error:
            if _error_code(error) == "NoSuchUpload":  # another worker's sweep got there first
                return 0
            raise
        return 1

    def _storage_error(self, message: str, error: Exception) -> StorageError:
        return StorageError(f"{message} in s3://{self.bucket}/{self.prefix}: {error}")
