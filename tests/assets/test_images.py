"""Image codec helpers: PNG metadata, thumbnails, upload validation and cleaning.

Every test image is drawn here with Pillow; files that Pillow will not write (an oversized
header, a truncated file) are derived from real encodes by editing their bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageDraw, JpegImagePlugin, PngImagePlugin

from imagestudio.assets.images import (
    ALL_UPLOAD_FORMATS,
    CONVERTED_FORMATS,
    DecodedUpload,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    _webp_canvas_size,
    _webp_is_lossless,
    decode_upload,
    encode_png,
    load_image,
    make_thumbnail,
    read_png_metadata,
    sha256_hex,
)

MAX_PIXELS = 4096 * 4096


# -- building test images -------------------------------------------------------------------------


def _pattern(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A picture with distinct regions, so rotations and re-encodes can be checked."""
    image = Image.new("RGB", size, (30, 90, 200))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, 0, width // 4, height // 4), fill=(255, 0, 0))  # red top-left corner
    draw.ellipse((width // 3, height // 3, width * 2 // 3, height * 2 // 3), fill=(250, 250, 40))
    draw.line((0, height - 1, width - 1, 0), fill=(0, 0, 0), width=2)
    return image.convert(mode) if mode != "RGB" else image


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _with_png_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite a PNG's IHDR so it declares another size (with a valid CRC)."""
    ihdr_length = struct.unpack(">I", png[8:12])[0]
    assert png[12:16] == b"IHDR"
    payload = struct.pack(">II", width, height) + png[24 : 16 + ihdr_length]
    return png[:8] + _png_chunk(b"IHDR", payload) + png[8 + 12 + ihdr_length :]


def _png_chunk_types(png: bytes) -> list[bytes]:
    kinds, offset = [], 8
    while offset < len(png):
        length = struct.unpack(">I", png[offset : offset + 4])[0]
        kinds.append(png[offset + 4 : offset + 8])
        offset += 12 + length
    return kinds


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    a, b = first.convert("RGB").tobytes(), second.convert("RGB").tobytes()
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def _gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel 12"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"  # GPSLatitudeRef
    gps[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    gps[3] = "E"  # GPSLongitudeRef
    gps[4] = (2.0, 17.0, 40.0)  # GPSLongitude
    return exif


# -- PNG metadata ---------------------------------------------------------------------------------


def test_png_metadata_round_trip() -> None:
    image = _pattern()
    params = json.dumps({"prompt": "a lighthouse at dusk, 35mm", "seed": 1234, "steps": 30} | {"x" * 50: "y" * 2000})
    metadata = {
        "parameters": params,
        "prompt": "café au lait ☕, ünïcode and émoji 🌅",
        "Software": "imagestudio",
    }
    data = encode_png(image, metadata)

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert _png_chunk_types(data).count(b"iTXt") == 3
    assert read_png_metadata(data) == metadata
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.size == image.size
        assert decoded.convert("RGB").tobytes() == image.tobytes()


def test_png_metadata_empty_and_alpha_kept() -> None:
    image = _pattern(mode="RGBA")
    image.putpixel((1, 1), (10, 20, 30, 0))
    data = encode_png(image, {})
    assert read_png_metadata(data) == {}
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((1, 1)) == (10, 20, 30, 0)


def test_higher_compress_level_still_decodes_to_the_same_pixels() -> None:
    image = _pattern((128, 128))
    fast = encode_png(image, {"k": "v"})
    small = encode_png(image, {"k": "v"}, compress_level=9)
    assert len(small) <= len(fast)
    assert load_image(small).tobytes() == load_image(fast).tobytes() == image.tobytes()


def test_encode_png_converts_modes_png_cannot_hold() -> None:
    cmyk = _pattern().convert("CMYK")
    with Image.open(io.BytesIO(encode_png(cmyk, {}))) as decoded:
        assert decoded.mode == "RGB"


@pytest.mark.parametrize("key", ["", " leading", "trailing ", "two  spaces", "nul\x00", "k" * 80, "ключ"])
def test_encode_png_rejects_invalid_keywords(key: str) -> None:
    with pytest.raises(ValueError):
        encode_png(_pattern(), {key: "value"})


def test_encode_png_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        encode_png(_pattern(), {}, compress_level=10)
    with pytest.raises(TypeError):
        encode_png(_pattern(), {"seed": 42})  # type: ignore[dict-item]


def test_read_png_metadata_refuses_other_formats() -> None:
    with pytest.raises(UnsupportedImage):
        read_png_metadata(_encode(_pattern(), "JPEG"))
    with pytest.raises(UnsupportedImage):
        read_png_metadata(b"not an image")


# -- thumbnails -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1024, 512), 256, (256, 128)),
        ((300, 900), 256, (85, 256)),
        ((2000, 2000), 128, (128, 128)),
        ((64, 32), 256, (64, 32)),  # never enlarged
    ],
)
def test_thumbnail_size_and_format(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    source = _pattern(size)
    thumbnail = make_thumbnail(source, max_side=max_side)
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
    with Image.open(io.BytesIO(thumbnail)) as decoded:
        assert decoded.format == "WEBP"
        assert decoded.size == expected
    assert source.size == size  # the caller's image is left alone


def test_thumbnail_looks_like_the_source() -> None:
    source = _pattern((512, 384))
    with Image.open(io.BytesIO(make_thumbnail(source))) as decoded:
        assert _mean_difference(decoded, source.resize(decoded.size)) < 8


def test_thumbnail_keeps_alpha_and_accepts_other_modes() -> None:
    transparent = Image.new("RGBA", (400, 200), (255, 0, 0, 0))
    with Image.open(io.BytesIO(make_thumbnail(transparent))) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((10, 10))[3] == 0
    for mode in ("L", "P", "LA", "CMYK", "1"):
        with Image.open(io.BytesIO(make_thumbnail(_pattern((600, 300), mode)))) as decoded:
            assert decoded.size == (256, 128)


def test_thumbnail_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError):
        make_thumbnail(_pattern(), max_side=0)


def test_sha256_hex() -> None:
    data = _encode(_pattern(), "PNG")
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- uploads: accepted ----------------------------------------------------------------------------


def test_png_upload_loses_text_chunks_exif_and_appended_bytes() -> None:
    image = _pattern()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address: 1 Secret Lane")
    info.add_itxt("parameters", "private prompt")
    original = _encode(image, "PNG", pnginfo=info, exif=_gps_exif()) + b"APPENDED-ZIP-PAYLOAD" * 10

    upload = decode_upload(original, max_pixels=MAX_PIXELS)

    assert isinstance(upload, DecodedUpload)
    assert (upload.format, upload.mime_type) == ("PNG", "image/png")
    assert (upload.width, upload.height) == image.size
    assert upload.sha256 == hashlib.sha256(upload.data).hexdigest()
    assert read_png_metadata(upload.data) == {}
    assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf"} & set(_png_chunk_types(upload.data))
    assert _png_chunk_types(upload.data)[-1] == b"IEND"
    assert b"APPENDED-ZIP-PAYLOAD" not in upload.data
    assert b"Secret Lane" not in upload.data
    assert load_image(upload.data).tobytes() == image.tobytes()  # lossless stays lossless
    assert upload.image.tobytes() == image.tobytes()


def test_jpeg_with_gps_exif_and_payload_comes_out_clean() -> None:
    image = _pattern((120, 80))
    original = _encode(image, "JPEG", quality=95, exif=_gps_exif(), comment=b"shot at home")
    original += b"PK\x03\x04hidden archive after the end of image"
    with Image.open(io.BytesIO(original)) as check:
        assert check.getexif().get_ifd(0x8825)  # the GPS data really is in the input
        input_pixels = check.convert("RGB")

    upload = decode_upload(original, max_pixels=MAX_PIXELS)

    assert (upload.format, upload.mime_type) == ("JPEG", "image/jpeg")
    assert (upload.width, upload.height) == (120, 80)
    assert upload.data.startswith(b"\xff\xd8") and upload.data.endswith(b"\xff\xd9")
    assert b"Exif" not in upload.data
    assert b"PhoneModel" not in upload.data
    assert b"shot at home" not in upload.data
    assert b"hidden archive" not in upload.data
    with Image.open(io.BytesIO(upload.data)) as decoded:
        assert decoded.format == "JPEG"
        assert len(decoded.getexif()) == 0
        assert "comment" not in decoded.info
        assert decoded.size == (120, 80)
        # One re-encode at quality 92 barely moves the pixels the user uploaded.
        assert _mean_difference(decoded, input_pixels) < 3


@pytest.mark.parametrize(("subsampling", "expected"), [(0, 0), (1, 1), (2, 2)])
def test_jpeg_chroma_subsampling_is_kept(subsampling: int, expected: int) -> None:
    original = _encode(_pattern(), "JPEG", quality=95, subsampling=subsampling)
    upload = decode_upload(original, max_pixels=MAX_PIXELS)
    with Image.open(io.BytesIO(upload.data)) as decoded:
        assert JpegImagePlugin.get_sampling(decoded) == expected


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [
        (3, "bottom-right"),  # rotated 180
        (6, "top-right"),  # rotated 90 clockwise to display
        (8, "bottom-left"),  # rotated 90 counter-clockwise to display
    ],
)
def test_exif_orientation_is_applied(orientation: int, corner: str) -> None:
    stored = _pattern((80, 40))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    upload = decode_upload(_encode(stored, "JPEG", quality=95, exif=exif), max_pixels=MAX_PIXELS)

    expected_size = (80, 40) if orientation == 3 else (40, 80)
    assert (upload.width, upload.height) == expected_size
    decoded = load_image(upload.data)
    assert decoded.size == expected_size
    width, height = expected_size
    points = {
        "top-left": (2, 2),
        "top-right": (width - 3, 2),
        "bottom-left": (2, height - 3),
        "bottom-right": (width - 3, height - 3),
    }
    red_corners = [
        name
        for name, point in points.items()
        if decoded.getpixel(point)[0] > 200 and max(decoded.getpixel(point)[1:]) < 60
    ]
    assert red_corners == [corner]
    assert len(Image.open(io.BytesIO(upload.data)).getexif()) == 0


def test_lossy_webp_stays_webp() -> None:
    original = _encode(_pattern(), "WEBP", quality=90, exif=_gps_exif())
    assert b"PhoneModel" in original
    upload = decode_upload(original, max_pixels=MAX_PIXELS)
    assert (upload.format, upload.mime_type) == ("WEBP", "image/webp")
    assert b"EXIF" not in upload.data and b"PhoneModel" not in upload.data
    assert upload.data[12:16] != b"VP8L"
    with Image.open(io.BytesIO(upload.data)) as decoded:
        assert decoded.format == "WEBP"
        assert _mean_difference(decoded, load_image(original)) < 3


def _with_transparent_corner(image: Image.Image) -> Image.Image:
    image = image.convert("RGBA")
    ImageDraw.Draw(image).rectangle((0, 0, 5, 5), fill=(0, 0, 0, 0))
    return image


def test_lossless_webp_stays_lossless() -> None:
    image = _with_transparent_corner(_pattern())
    upload = decode_upload(_encode(image, "WEBP", lossless=True), max_pixels=MAX_PIXELS)
    assert upload.data[12:16] == b"VP8L"
    assert load_image(upload.data).tobytes() == image.tobytes()


def test_palette_png_with_transparency_becomes_rgba() -> None:
    palette = _pattern().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    index = palette.getpixel((0, 0))
    data = _encode(palette, "PNG", transparency=index)
    upload = decode_upload(data, max_pixels=MAX_PIXELS)
    assert upload.image.mode == "RGBA"
    assert load_image(upload.data).getpixel((0, 0))[3] == 0


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped() -> None:
    deep = Image.new("I;16", (16, 16), 32768)
    deep.putpixel((0, 0), 65535)
    upload = decode_upload(_encode(deep, "PNG"), max_pixels=MAX_PIXELS)
    decoded = load_image(upload.data)
    assert decoded.mode == "L"
    assert decoded.getpixel((5, 5)) == 128
    assert decoded.getpixel((0, 0)) == 255


def test_greyscale_stays_greyscale_for_masks() -> None:
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
    upload = decode_upload(_encode(mask, "PNG"), max_pixels=MAX_PIXELS)
    decoded = load_image(upload.data)
    assert decoded.mode == "L"
    assert decoded.tobytes() == mask.tobytes()


def _smooth_colours(size: tuple[int, int] = (64, 48)) -> Image.Image:
    horizontal = Image.linear_gradient("L").resize(size)
    vertical = Image.linear_gradient("L").rotate(90).resize(size)
    return Image.merge("RGB", [horizontal, vertical, Image.new("L", size, 140)])


def test_cmyk_jpeg_becomes_rgb() -> None:
    original = _encode(_smooth_colours().convert("CMYK"), "JPEG", quality=95)
    upload = decode_upload(original, max_pixels=MAX_PIXELS)
    assert upload.image.mode == "RGB"
    with Image.open(io.BytesIO(upload.data)) as decoded, Image.open(io.BytesIO(original)) as source:
        assert source.mode == "CMYK"
        assert decoded.mode == "RGB"
        assert _mean_difference(decoded, source.convert("RGB")) < 3


def test_colour_profile_is_converted_and_dropped() -> None:
    image = _pattern()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    upload = decode_upload(_encode(image, "PNG", icc_profile=srgb), max_pixels=MAX_PIXELS)
    with Image.open(io.BytesIO(upload.data)) as decoded:
        assert "icc_profile" not in decoded.info
        assert _mean_difference(decoded, image) < 2


def test_a_garbage_colour_profile_does_not_block_the_upload() -> None:
    image = _pattern()
    upload = decode_upload(_encode(image, "PNG", icc_profile=b"not a profile" * 20), max_pixels=MAX_PIXELS)
    assert load_image(upload.data).tobytes() == image.tobytes()


def test_exactly_max_pixels_is_accepted() -> None:
    upload = decode_upload(_encode(_pattern((40, 25)), "PNG"), max_pixels=1000)
    assert (upload.width, upload.height) == (40, 25)


def test_a_single_pixel_is_an_image() -> None:
    upload = decode_upload(_encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"), max_pixels=1)
    assert (upload.width, upload.height) == (1, 1)
    assert load_image(upload.data).getpixel((0, 0)) == (9, 8, 7)


def test_stored_pngs_use_fast_compression() -> None:
    """The re-encode runs while the upload request waits: the stored PNG's zlib stream must say it
    was written by the fastest compressor (FLEVEL 0), not the slower default."""
    upload = decode_upload(_encode(_pattern(), "PNG", compress_level=9), max_pixels=MAX_PIXELS)
    start = upload.data.index(b"IDAT") + 4
    cmf, flg = upload.data[start], upload.data[start + 1]
    assert cmf & 0x0F == 8  # deflate
    assert flg >> 6 == 0


# -- uploads: refused -----------------------------------------------------------------------------


def test_png_declaring_100000_by_100000_is_refused_before_decoding() -> None:
    bomb = _with_png_size(_encode(_pattern((8, 8)), "PNG"), 100_000, 100_000)
    with pytest.raises(ImageTooLarge):
        decode_upload(bomb, max_pixels=MAX_PIXELS)


def test_png_over_the_caller_limit_is_refused() -> None:
    with pytest.raises(ImageTooLarge) as refused:
        decode_upload(_encode(_pattern((41, 25)), "PNG"), max_pixels=1000)
    assert str(refused.value) == "image is 41x25 (1,025 pixels); the limit is 1,000 pixels"


def test_webp_declaring_a_huge_canvas_is_refused_before_opening() -> None:
    webp = bytearray(_encode(_pattern((8, 8)), "WEBP", lossless=True))
    assert webp[12:16] == b"VP8L"
    bits = int.from_bytes(webp[21:25], "little")
    bits = (bits & ~0x0FFFFFFF) | 16383 | (16383 << 14)  # 16384 x 16384
    webp[21:25] = bits.to_bytes(4, "little")
    with pytest.raises(ImageTooLarge, match="16384x16384"):
        decode_upload(bytes(webp), max_pixels=MAX_PIXELS)


def test_pillows_decompression_bomb_error_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = _encode(_pattern((100, 100)), "PNG")  # ten times Pillow's limit: Image.open raises
    with pytest.raises(ImageTooLarge):
        decode_upload(data, max_pixels=MAX_PIXELS)
    with pytest.raises(ImageTooLarge):
        load_image(data)


def test_pillows_decompression_bomb_warning_is_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = _encode(_pattern((40, 40)), "PNG")  # over Pillow's limit but under twice it: a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLarge):
            decode_upload(data, max_pixels=MAX_PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLarge):
            decode_upload(data, max_pixels=MAX_PIXELS)


def test_real_svg_is_refused() -> None:
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        b'<script>alert(document.cookie)</script><rect width="64" height="64" fill="red"/></svg>\n'
    )
    with pytest.raises(UnsupportedImage, match="SVG"):
        decode_upload(svg, max_pixels=MAX_PIXELS)


def test_gif_is_refused() -> None:
    gif = _encode(_pattern().convert("P"), "GIF")
    assert gif.startswith(b"GIF89a") or gif.startswith(b"GIF87a")
    with pytest.raises(UnsupportedImage, match="GIF"):
        decode_upload(gif, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("image_format", ["BMP", "TIFF"])
def test_other_raster_formats_are_refused(image_format: str) -> None:
    with pytest.raises(UnsupportedImage, match=image_format):
        decode_upload(_encode(_pattern(), image_format), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("image_format", CONVERTED_FORMATS)
def test_other_raster_formats_are_read_when_allowed_and_stored_as_png(image_format: str) -> None:
    source = _pattern()
    if image_format == "GIF":
        source = source.convert("P", palette=Image.Palette.ADAPTIVE)
    upload = decode_upload(_encode(source, image_format), max_pixels=MAX_PIXELS, allowed=ALL_UPLOAD_FORMATS)
    assert (upload.format, upload.mime_type) == ("PNG", "image/png")
    assert upload.data.startswith(b"\x89PNG\r\n\x1a\n")
    stored = Image.open(io.BytesIO(upload.data))
    assert stored.size == source.size
    expected = source.convert("RGB").getpixel((5, 5))
    assert max(abs(a - b) for a, b in zip(stored.convert("RGB").getpixel((5, 5)), expected, strict=True)) <= 8


def test_animated_gif_and_multipage_tiff_are_refused_even_when_allowed() -> None:
    frames = [_pattern(), _pattern().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    for image_format in ("GIF", "TIFF"):
        animated = _encode(frames[0], image_format, save_all=True, append_images=frames[1:])
        with pytest.raises(UnsupportedImage, match="animated"):
            decode_upload(animated, max_pixels=MAX_PIXELS, allowed=ALL_UPLOAD_FORMATS)


def test_converted_formats_are_checked_against_the_pixel_limit() -> None:
    with pytest.raises(ImageTooLarge):
        decode_upload(_encode(_pattern(), "BMP"), max_pixels=100, allowed=ALL_UPLOAD_FORMATS)


def test_truncated_png_is_refused() -> None:
    complete = _encode(Image.effect_noise((128, 128), 64).convert("RGB"), "PNG")
    with pytest.raises(UnsupportedImage, match=r"^damaged or truncated PNG image: "):
        decode_upload(complete[: len(complete) // 2], max_pixels=MAX_PIXELS)


def test_truncated_jpeg_is_refused() -> None:
    complete = _encode(Image.effect_noise((128, 128), 64).convert("RGB"), "JPEG")
    with pytest.raises(UnsupportedImage):
        decode_upload(complete[: len(complete) // 2], max_pixels=MAX_PIXELS)


def test_header_only_png_is_refused() -> None:
    with pytest.raises(UnsupportedImage, match=r"^not a valid PNG image: "):
        decode_upload(b"\x89PNG\r\n\x1a\n", max_pixels=MAX_PIXELS)


def test_only_the_decoder_of_the_sniffed_format_reads_an_upload() -> None:
    """A TGA picture behind the twelve bytes that make a file look like an AVIF: Pillow would find
    a TGA decoder for it if asked to try them all, but only the AVIF decoder may see it."""
    header = bytes([0, 0, 3, 0]) + b"ftypavif" + struct.pack("<HH", 8, 4) + bytes([8, 0x20])
    polyglot = header + bytes(range(0, 256, 8))
    with Image.open(io.BytesIO(polyglot)) as anything:
        assert anything.format == "TGA"  # what the file would be read as
    with pytest.raises(UnsupportedImage, match=r"^not a valid AVIF image: "):
        decode_upload(polyglot, max_pixels=MAX_PIXELS, allowed=ALL_UPLOAD_FORMATS)


def test_text_file_named_png_is_refused(tmp_path: Path) -> None:
    disguised = tmp_path / "holiday.png"
    disguised.write_text("definitely a picture of the beach\n")
    with pytest.raises(UnsupportedImage, match="not a recognised image"):
        decode_upload(disguised.read_bytes(), max_pixels=MAX_PIXELS)


def test_empty_file_is_refused() -> None:
    with pytest.raises(UnsupportedImage, match="empty"):
        decode_upload(b"", max_pixels=MAX_PIXELS)


def test_animated_png_and_webp_are_refused() -> None:
    frames = [_pattern(), _pattern().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    for image_format in ("PNG", "WEBP"):
        animated = _encode(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100)
        with pytest.raises(UnsupportedImage, match=r"^animated images are not accepted; upload a single still image$"):
            decode_upload(animated, max_pixels=MAX_PIXELS)


def test_formats_outside_allowed_are_refused() -> None:
    jpeg = _encode(_pattern(), "JPEG")
    with pytest.raises(UnsupportedImage, match="JPEG images are not accepted"):
        decode_upload(jpeg, max_pixels=MAX_PIXELS, allowed=("PNG",))
    assert decode_upload(jpeg, max_pixels=MAX_PIXELS, allowed=("jpeg",)).format == "JPEG"


def test_bad_arguments_are_programming_errors() -> None:
    data = _encode(_pattern(), "PNG")
    among = "PNG, JPEG, WEBP, GIF, BMP, TIFF, AVIF"
    with pytest.raises(ValueError, match=rf"^allowed formats must be among {among}, got \['PNG', 'SVG'\]$"):
        decode_upload(data, max_pixels=MAX_PIXELS, allowed=("PNG", "SVG"))
    with pytest.raises(ValueError):
        decode_upload(data, max_pixels=MAX_PIXELS, allowed=())
    with pytest.raises(ValueError, match=r"^max_pixels must be positive, got 0$"):
        decode_upload(data, max_pixels=0)


def test_errors_share_a_base_class() -> None:
    assert issubclass(UnsupportedImage, ImageError)
    assert issubclass(ImageTooLarge, ImageError)
    assert not issubclass(UnsupportedImage, ImageTooLarge)


# -- load_image -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_load_image_preserves_stored_modes(mode: str) -> None:
    image = _pattern(mode=mode)
    loaded = load_image(encode_png(image, {"seed": "1"}))
    assert loaded.mode == mode
    assert loaded.tobytes() == image.tobytes()


def test_load_image_reads_jpeg_and_webp() -> None:
    assert load_image(_encode(_pattern(), "JPEG")).size == (64, 48)
    assert load_image(_encode(_with_transparent_corner(_pattern()), "WEBP")).mode == "RGBA"


def test_load_image_normalizes_palette_images() -> None:
    palette = _pattern().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert load_image(_encode(palette, "PNG")).mode == "RGB"


def test_load_image_refuses_garbage() -> None:
    with pytest.raises(UnsupportedImage):
        load_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(UnsupportedImage):
        load_image(_encode(_pattern(), "GIF"))


# --- the declared size of each container, read before decoding, exactly --------------------------


def _webp_variants() -> dict[str, bytes]:
    size = (37, 23)  # odd and not square: width and height cannot be swapped or rounded unnoticed
    return {
        "VP8 ": _encode(_pattern(size), "WEBP", quality=80),
        "VP8L": _encode(_pattern(size), "WEBP", lossless=True),
        "VP8X": _encode(_pattern(size, "RGBA"), "WEBP", quality=80, exif=_gps_exif()),
    }


@pytest.mark.parametrize("chunk", ["VP8 ", "VP8L", "VP8X"])
def test_each_webp_kind_is_held_to_the_pixel_limit_exactly(chunk: str) -> None:
    data = _webp_variants()[chunk]
    assert data[12:16] == chunk.encode()
    upload = decode_upload(data, max_pixels=37 * 23)  # exactly at the limit: served
    assert (upload.width, upload.height) == (37, 23)
    with pytest.raises(ImageTooLarge, match="37x23"):
        decode_upload(data, max_pixels=37 * 23 - 1)


@pytest.mark.parametrize("chunk", ["VP8 ", "VP8L", "VP8X"])
@pytest.mark.parametrize("size", [(1234, 567), (567, 1234), (1, 1)])
def test_the_declared_webp_canvas_is_read_exactly_from_its_header(chunk: str, size: tuple[int, int]) -> None:
    """The size is read from the first 30 bytes before anything is decoded (the bomb check): sizes
    over one byte in each field, swapped, and the smallest, must come out as Pillow reads them."""
    mode = "RGBA" if chunk == "VP8X" else "RGB"
    extra = {"lossless": True} if chunk == "VP8L" else {"quality": 80}
    data = _encode(_pattern(size, mode), "WEBP", **extra, **({"exif": _gps_exif()} if chunk == "VP8X" else {}))
    assert data[12:16] == chunk.encode()
    assert _webp_canvas_size(data[:30]) == size


def _riff(*chunks: tuple[bytes, bytes], form: bytes = b"WEBP") -> bytes:
    """A RIFF file of the given (tag, payload) chunks, each padded to an even length as RIFF requires."""
    body = form + b"".join(
        tag + len(payload).to_bytes(4, "little") + payload + b"\0" * (len(payload) & 1) for tag, payload in chunks
    )
    return b"RIFF" + len(body).to_bytes(4, "little") + body


_VP8X = (b"VP8X", b"\x10" + b"\0" * 9)  # the extended header: ten bytes, the first one not zero
_ICCP = (b"ICCP", b"abc")  # an odd length: one byte of padding follows


@pytest.mark.parametrize(
    ("data", "lossless"),
    [
        (_riff((b"VP8L", b"\x2f\0\0")), True),
        (_riff((b"VP8 ", b"\0" * 10)), False),
        (_riff((b"VP8L", b"")), True),  # a chunk header that ends the file exactly
        (_riff(_VP8X, (b"VP8L", b"\x2f")), True),
        (_riff(_VP8X, _ICCP, (b"VP8L", b"\x2f")), True),
        (_riff(_VP8X, _ICCP, (b"VP8 ", b"\x2f")), False),
        (_riff((b"VP8 ", b"\0" * 10), (b"VP8L", b"\x2f")), False),  # the first image chunk decides
        (_riff(_VP8X) + b"VP8L", False),  # a chunk name cut off before its size
        (_riff((b"VP8L", b"\x2f"), form=b"WAVE"), False),
        (b"RIFX" + _riff((b"VP8L", b"\x2f"))[4:], False),
        (b"GIF89a" + b"\0" * 32, False),
    ],
)
def test_a_webp_is_lossless_when_its_first_image_chunk_is_vp8l(data: bytes, lossless: bool) -> None:
    """Chunks before the image data (the extended header, an ICC profile of odd length) are skipped
    by their declared little-endian sizes and padding; anything not a RIFF WebP is not lossless."""
    assert _webp_is_lossless(data) is lossless


def test_webp_too_short_to_declare_a_size_is_refused() -> None:
    with pytest.raises(UnsupportedImage, match=r"^truncated WebP image$"):
        decode_upload(b"RIFF\x10\x00\x00\x00WEBPVP8L\x04\x00\x00\x00", max_pixels=MAX_PIXELS)


def test_webp_with_an_unknown_first_chunk_is_refused() -> None:
    data = bytearray(_webp_variants()["VP8L"])
    data[12:16] = b"ABCD"
    with pytest.raises(UnsupportedImage, match=r"^not a valid WebP image: unknown first chunk$"):
        decode_upload(bytes(data), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(("field", "declared"), [(slice(26, 28), "0x23"), (slice(28, 30), "37x0")])
def test_a_webp_declaring_an_empty_canvas_is_refused(field: slice, declared: str) -> None:
    data = bytearray(_webp_variants()["VP8 "])
    data[field] = b"\0\0"  # fourteen bits of size and two of scale, all zero
    with pytest.raises(UnsupportedImage, match=f"^image declares an empty size {declared}$"):
        decode_upload(bytes(data), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a" + b"\x00" * 64, "GIF images are not accepted"),
        (b"GIF87a" + b"\x00" * 64, "GIF images are not accepted"),
        (b'\xef\xbb\xbf \n<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG images"),
        (b"<SVG width='1' height='1'></SVG>", "SVG images are not accepted"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "HEIC images are not accepted"),
        (b"II*\x00" + b"\x00" * 64, "TIFF images are not accepted"),
        (b"MM\x00*" + b"\x00" * 64, "TIFF images are not accepted"),
        (b"BM" + b"\x00" * 64, "BMP images are not accepted"),
        (b"<html><body>not an image</body></html>", "the file is not a recognised image"),
    ],
)
def test_each_refused_format_is_named(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedImage, match=message) as refused:
        decode_upload(data, max_pixels=MAX_PIXELS)
    # Each refusal says what is taken instead.
    assert str(refused.value).endswith("PNG, JPEG, WebP")
