"""Signed links on each storage: the studio's own HMAC links everywhere, and with
IMAGESTUDIO_SIGNED_LINKS=storage the S3 server's presigned URLs, fetched for real from moto."""

from __future__ import annotations

import urllib.request
import uuid
from pathlib import Path

from starlette.requests import Request

from imagestudio.assets import links
from imagestudio.config import load_settings
from imagestudio.models import Asset
from imagestudio.storage import storage_from_url

from .test_s3 import _make_storage


def _request(host: str = "studio.example") -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "client": ("203.0.113.9", 5000),
        "server": (host, 443),
    }
    return Request(scope)


def _asset(key: str) -> Asset:
    return Asset(id=uuid.uuid4(), storage_key=key, mime_type="image/png")


def test_storage_mode_hands_out_presigned_urls_that_work(moto_endpoint: str, tmp_path: Path) -> None:
    storage = _make_storage(moto_endpoint)
    storage.put("outputs/a.png", b"\x89PNG fake bytes", "image/png")
    settings = load_settings(data_dir=tmp_path, secret_key="k", signed_links="storage")
    link = links.sign_link(_request(), settings, storage, _asset("outputs/a.png"), 120)
    assert link.url.startswith(moto_endpoint) and "X-Amz-Expires=120" in link.url
    with urllib.request.urlopen(link.url) as response:
        assert response.read() == b"\x89PNG fake bytes"


def test_studio_mode_links_point_at_the_studio_even_on_s3(moto_endpoint: str, tmp_path: Path) -> None:
    storage = _make_storage(moto_endpoint)
    settings = load_settings(data_dir=tmp_path, secret_key="k")
    asset = _asset("outputs/b.png")
    link = links.sign_link(_request(), settings, storage, asset, 120)
    assert link.url.startswith(f"https://studio.example/api/v1/assets/{asset.id}/signed?expires=")


def test_storage_mode_falls_back_to_studio_links_where_the_store_cannot_presign(tmp_path: Path) -> None:
    storage = storage_from_url(str(tmp_path / "files"))
    settings = load_settings(data_dir=tmp_path, secret_key="k", signed_links="storage")
    asset = _asset("outputs/c.png")
    link = links.sign_link(_request(), settings, storage, asset, 120)
    assert link.url.startswith(f"https://studio.example/api/v1/assets/{asset.id}/signed?")
