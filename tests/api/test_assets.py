"""Uploads and serving assets: good images, hostile ones (oversized, lying, disguised, truncated,
bombs, SVG, EXIF with GPS and a payload), deduplication, headers, caching, and who may read what."""

from __future__ import annotations

import io
import re
import struct
import uuid
import zlib

import pytest
from PIL import Image
from sqlalchemy import func, select

from imagestudio.models import Asset
from tests.api.helpers import API, assert_problem, error_fields, image_bytes, run_queue, upload

BOUNDARY = "----imagestudio-test-boundary"


def _multipart(data: bytes, purpose: str = "init", filename: str = "big.png") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def _form_headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **extra}


def _asset_count(container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(Asset))


def _stored_files(container) -> list[str]:
    return list(container.storage.list(""))


def _png_with_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG declaring another size in its IHDR (CRC fixed), as a decompression bomb would."""
    payload = struct.pack(">II", width, height) + png[24:29]
    chunk = struct.pack(">I", 13) + b"IHDR" + payload + struct.pack(">I", zlib.crc32(b"IHDR" + payload))
    return png[:8] + chunk + png[33:]


def _jpeg_with_gps_and_payload() -> tuple[bytes, bytes]:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 120, 220)).save(buffer, format="JPEG", exif=exif, quality=90)
    payload = b"<?php system($_GET['c']); ?>" + b"PK\x03\x04 appended archive"
    return buffer.getvalue() + payload, payload


def test_upload_stores_a_clean_copy_with_a_thumbnail_and_deduplicates(accounts, container) -> None:
    client = accounts.make().client
    original = image_bytes((300, 200))
    created = upload(client, original, purpose="init", filename="holiday.png")
    assert created.status_code == 201, created.text
    asset = created.json()
    assert (asset["kind"], asset["purpose"], asset["mime_type"]) == ("upload", "init", "image/png")
    assert (asset["width"], asset["height"]) == (300, 200)
    assert asset["content_url"] == f"{API}/assets/{asset['id']}/content"
    assert client.get(f"{API}/assets/{asset['id']}").json() == asset

    again = upload(client, original, purpose="init", filename="another-name.png")
    assert again.status_code == 200 and again.json()["id"] == asset["id"]
    assert upload(client, original, purpose="mask").status_code == 201  # another purpose, another asset
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    in_session = upload(client, original, purpose="init", session_id=session_id)
    assert in_session.status_code == 201 and in_session.json()["session_id"] == session_id

    with container.db.reading() as db:
        row = db.get(Asset, uuid.UUID(asset["id"]))
    assert row.storage_key.startswith("uploads/") and asset["id"] not in row.storage_key
    assert len(row.storage_key.split("/")[1].split(".")[0]) == 32  # 128 random bits
    with Image.open(io.BytesIO(container.storage.get(row.thumbnail_key))) as thumbnail:
        assert thumbnail.format == "WEBP" and max(thumbnail.size) == 256


def test_content_and_thumbnail_headers_etag_and_owner_only(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    asset = upload(owner.client, image_bytes(), filename='../../etc/"pass wd".png').json()
    content = owner.client.get(asset["content_url"])
    assert content.status_code == 200
    assert content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"
    disposition = content.headers["content-disposition"]
    assert re.fullmatch(r'inline; filename="[A-Za-z0-9][A-Za-z0-9._-]*pass-wd[A-Za-z0-9._-]*\.png"', disposition)
    assert content.headers["etag"] == f'"{asset["sha256"]}"'
    assert content.headers["cache-control"].startswith("private, max-age=")
    assert int(content.headers["content-length"]) == asset["bytes"] == len(content.content)
    assert Image.open(io.BytesIO(content.content)).size == (48, 32)

    etag = content.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = owner.client.get(asset["content_url"], headers={"If-None-Match": header})
        assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
    assert owner.client.get(asset["content_url"], headers={"If-None-Match": '"stale"'}).status_code == 200

    thumbnail = owner.client.get(asset["thumbnail_url"])
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.headers["content-disposition"].endswith('-thumbnail.webp"')
    assert (
        owner.client.get(asset["thumbnail_url"], headers={"If-None-Match": thumbnail.headers["etag"]}).status_code
        == 304
    )

    # The owner's API key reads it; nobody else (404 alike for missing and foreign).
    assert owner.bearer(scopes=["read"]).get(asset["content_url"]).status_code == 200
    for path in (asset["content_url"], asset["thumbnail_url"], f"{API}/assets/{asset['id']}"):
        assert_problem(other.client.get(path), 404, "not_found")
        assert_problem(other.bearer().get(path), 404, "not_found")
    assert_problem(owner.client.get(f"{API}/assets/{uuid.uuid4()}/content"), 404, "not_found")


def test_generated_outputs_are_served_with_their_parameters_inside(accounts, container) -> None:
    client = accounts.make().client
    generation = client.post(f"{API}/generations", json={"prompt": "a tin robot", "width": 64, "height": 64}).json()
    run_queue(container)
    [output] = client.get(f"{API}/generations/{generation['id']}").json()["outputs"]
    content = client.get(output["content_url"])
    assert content.headers["content-disposition"] == f'inline; filename="imagestudio-{generation["id"]}-0.png"'
    with Image.open(io.BytesIO(content.content)) as image:
        assert image.text["prompt"] == "a tin robot"
    assert client.get(output["thumbnail_url"]).headers["content-type"] == "image/webp"


@pytest.mark.parametrize(
    ("requested", "filename"),
    [
        ("a-quiet-harbour-step-3-2.png", "a-quiet-harbour-step-3-2.png"),
        ("harbour step 3.jpg", "harbour-step-3.png"),  # the image's own type decides the extension
        ('x"; filename="evil.exe', "x-filename-evil.png"),
        ("../../etc/passwd", "etc-passwd.png"),
        ("...", None),  # nothing usable left: the default name
    ],
)
def test_a_download_is_an_attachment_under_a_safe_name(accounts, container, requested, filename) -> None:
    client = accounts.make().client
    generation = client.post(f"{API}/generations", json={"prompt": "a tin robot", "width": 64, "height": 64}).json()
    run_queue(container)
    [output] = client.get(f"{API}/generations/{generation['id']}").json()["outputs"]
    content = client.get(output["content_url"], params={"download": requested})
    assert content.status_code == 200
    expected = filename or f"imagestudio-{generation['id']}-0.png"
    disposition = f'attachment; filename="{expected}"'
    if filename:  # a usable name also goes out in UTF-8 (RFC 6266), here the same letters
        disposition += f"; filename*=UTF-8''{filename}"
    assert content.headers["content-disposition"] == disposition
    assert content.content == client.get(output["content_url"]).content
    # An empty or overlong name is a bad request, not a silent default.
    for bad in ("", "a" * 201):
        assert_problem(client.get(output["content_url"], params={"download": bad}), 422, "validation_failed")


@pytest.fixture
def small_uploads(container):
    container.settings.max_upload_bytes = 64 * 1024
    container.settings.max_upload_pixels = 1_000_000
    return container


def test_oversized_uploads_are_cut_off_while_reading(accounts, small_uploads) -> None:
    container = small_uploads
    client = accounts.make().client
    big = image_bytes((32, 32)) + b"\0" * (300 * 1024)  # a PNG with 300 KiB appended
    body = _multipart(big)

    honest = client.post(f"{API}/assets", content=body, headers=_form_headers())
    assert_problem(honest, 413, "upload_too_large")
    lying = client.post(f"{API}/assets", content=body, headers=_form_headers(**{"Content-Length": "900"}))
    assert_problem(lying, 413, "upload_too_large")

    def chunks():
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    chunked = client.post(f"{API}/assets", content=chunks(), headers=_form_headers())
    assert "content-length" not in chunked.request.headers
    assert_problem(chunked, 413, "upload_too_large")
    # Just over the limit, within the room left for form framing: still refused.
    slightly = image_bytes((16, 16)) + b"\0" * (64 * 1024)
    assert_problem(upload(client, slightly), 413, "upload_too_large")
    assert _asset_count(container) == 0 and _stored_files(container) == []


def test_hostile_and_broken_files_are_refused_never_a_server_error(accounts, small_uploads) -> None:
    container = small_uploads
    client = accounts.make().client
    png = image_bytes((64, 64))
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"
    cases = [
        (svg, 415, "unsupported_image"),
        (gif, 422, "invalid_image"),  # a GIF is read (and stored as PNG), but this one is cut short
        (b"\x00\x00\x00\x18ftypheic" + b"\0" * 20, 415, "unsupported_image"),
        (b"just some text named like a picture", 415, "unsupported_image"),
        (b"%PDF-1.7\n", 415, "unsupported_image"),
        (png[: len(png) // 2], 422, "invalid_image"),  # truncated
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 422, "invalid_image"),
        (_png_with_size(png, 30_000, 30_000), 422, "image_too_large"),  # a decompression bomb's header
        (_png_with_size(png, 2_000, 600), 422, "image_too_large"),  # over the configured pixel limit
        (b"", 422, "empty_file"),
    ]
    for data, status, code in cases:
        response = upload(client, data, filename="innocent.png")
        assert_problem(response, status, code)
        assert error_fields(response) == {"file"}, response.json()
    assert _asset_count(container) == 0 and _stored_files(container) == []


def test_a_decompression_bomb_is_refused_in_our_words_naming_our_limit(accounts, small_uploads) -> None:
    client = accounts.make().client
    bomb = _png_with_size(image_bytes((64, 64)), 30_000, 30_000)  # past Pillow's own refusal threshold
    response = upload(client, bomb, filename="bomb.png")
    assert_problem(response, 422, "image_too_large")
    detail = response.json()["detail"]
    assert "1,000,000 pixels" in detail, detail
    assert "178956970" not in detail and "decompression bomb" not in detail.lower(), detail
    assert _asset_count(small_uploads) == 0


def test_exif_gps_and_appended_payloads_do_not_survive(accounts, container) -> None:
    client = accounts.make().client
    dirty, payload = _jpeg_with_gps_and_payload()
    with Image.open(io.BytesIO(dirty)) as check:
        assert check.getexif().get_ifd(0x8825), "the input really carries GPS data"
    response = upload(client, dirty, filename="IMG_0001.JPG")
    assert response.status_code == 201, response.text
    asset = response.json()
    assert asset["mime_type"] == "image/jpeg"
    stored = client.get(asset["content_url"]).content
    assert payload not in stored and b"PhoneMaker" not in stored and b"Exif" not in stored
    with Image.open(io.BytesIO(stored)) as clean:
        assert not clean.getexif() and clean.size == (40, 30)


def test_malformed_forms_are_refused_with_the_field_named(accounts, container, client) -> None:
    owner, other = accounts.make(), accounts.make()
    anonymous, client = client, owner.client
    foreign_session = other.client.post(f"{API}/sessions", json={}).json()["id"]
    png = image_bytes()
    assert_problem(client.post(f"{API}/assets", json={"purpose": "init"}), 415, "unsupported_media_type")
    cases = [
        ({"files": {"purpose": (None, "init")}}, "file"),
        ({"files": {"file": ("a.png", png, "image/png")}}, "purpose"),
        ({"files": {"file": ("a.png", png, "image/png")}, "data": {"purpose": "wallpaper"}}, "purpose"),
        ({"files": {"file": ("a.png", png)}, "data": {"purpose": "init", "session_id": "nope"}}, "session_id"),
        ({"files": {"file": ("a.png", png)}, "data": {"purpose": "init", "session_id": foreign_session}}, "session_id"),
        ({"files": {"file": ("a.png", png)}, "data": {"purpose": "init", "file": "text, not a file"}}, "file"),
    ]
    for form, field in cases:
        response = client.post(f"{API}/assets", **form)
        assert_problem(response, 422)
        assert field in error_fields(response), (form, response.json())
    broken = client.post(f"{API}/assets", content=b"--x\r\nnot a form", headers=_form_headers())
    assert broken.status_code in (400, 422) and broken.headers["content-type"].startswith("application/problem")
    assert_problem(upload(anonymous), 401, "not_authenticated")
    assert _asset_count(container) == 0
