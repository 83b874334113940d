"""Image codecs for outputs and uploads: PNG with embedded parameters, WebP thumbnails, and
upload validation that decides the format from content and re-encodes what it accepts."""

from __future__ import annotations

import functools
import hashlib
import io
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin

UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
# Formats read from uploads but stored as PNG (a single still image only): what a user may have at
# hand and want described or edited, re-encoded before anything leaves the server.
CONVERTED_FORMATS = ("GIF", "BMP", "TIFF", "AVIF")
ALL_UPLOAD_FORMATS = UPLOAD_FORMATS + CONVERTED_FORMATS
MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

# Re-encoding settings: uploads are stored once and read often, but the encode sits on the
# request path, so PNG uses a low zlib level and lossy formats a quality that hides the
# generation loss of one re-encode.
UPLOAD_PNG_COMPRESS_LEVEL = 1
UPLOAD_JPEG_QUALITY = 92
UPLOAD_WEBP_QUALITY = 92
THUMBNAIL_WEBP_QUALITY = 80
# libwebp methods run 0 (fastest) to 6 (smallest); on thumbnail-sized images 2 costs about the
# same time as 0 and gives noticeably smaller files.
_WEBP_METHOD = 2
# Text values longer than this are stored deflated (iTXt compression flag).
_COMPRESS_TEXT_OVER = 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SAVE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

# What Pillow raises on corrupt or truncated input while opening or decoding.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageError(Exception):
    """An image the studio cannot accept or read."""


class UnsupportedImage(ImageError):
    """Not an image in an accepted format, or a damaged one."""


class ImageTooLarge(ImageError):
    """An image whose declared size exceeds the pixel limit (including decompression bombs)."""


@dataclass(frozen=True, eq=False)
class DecodedUpload:
    """An accepted upload: ``data`` is the re-encoded file, stripped of metadata and trailing bytes;
    ``image`` holds the decoded, orientation-corrected pixels that were encoded into it."""

    image: Image.Image
    data: bytes
    format: str
    mime_type: str
    width: int
    height: int
    sha256: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- outputs ------------------------------------------------------------------------------------


def encode_png(image: Image.Image, metadata: Mapping[str, str], compress_level: int = 1) -> bytes:
    """Encode as PNG with each metadata item in an iTXt chunk (UTF-8), so generation parameters
    travel with the file. Keys follow PNG keyword rules: 1-79 Latin-1 characters, no NUL, no
    leading or trailing space."""
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be between 0 and 9, got {compress_level}")
    text = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        _check_png_keyword(key)
        if not isinstance(value, str):
            raise TypeError(f"PNG metadata value for {key!r} must be str, got {type(value).__name__}")
        text.add_itxt(key, value, zip=len(value) > _COMPRESS_TEXT_OVER)
    if image.mode not in _PNG_SAVE_MODES:
        image = _normalize_mode(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=text, compress_level=compress_level)
    return buffer.getvalue()


def read_png_metadata(data: bytes) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG, wherever they sit in the file."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            # .text decodes the image, because text chunks may follow the pixel data.
            return {str(key): str(value) for key, value in image.text.items()}  # type: ignore[attr-defined]
    except _BOMB_ERRORS:
        raise ImageTooLarge("the image has too many pixels to read") from None
    except _DECODE_ERRORS as error:
        raise UnsupportedImage(f"not a readable PNG: {error}") from error


def make_thumbnail(image: Image.Image, max_side: int = 256) -> bytes:
    """A WebP no larger than max_side on its longer side, aspect ratio kept, never enlarged."""
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    image = _normalize_mode(image)
    width, height = image.size
    scale = max_side / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # reducing_gap lets Pillow shrink by whole factors first: much faster, visually the same.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if image.mode == "L":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=THUMBNAIL_WEBP_QUALITY, method=_WEBP_METHOD)
    return buffer.getvalue()


def load_image(data: bytes) -> Image.Image:
    """Decode a stored image, fully loaded. RGB, RGBA and L (masks) come back as they are; other
    modes become the nearest of those three."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS))
        image.load()
    except _BOMB_ERRORS:
        raise ImageTooLarge("the image has too many pixels to load") from None
    except _DECODE_ERRORS as error:
        raise UnsupportedImage(f"not a readable image: {error}") from error
    if image.mode in ("RGB", "RGBA") or (image.mode == "L" and "transparency" not in image.info):
        return image
    return _normalize_mode(image)


# -- uploads ------------------------------------------------------------------------------------


def decode_upload(data: bytes, *, max_pixels: int, allowed: Collection[str] = UPLOAD_FORMATS) -> DecodedUpload:
    """Validate and clean an uploaded image.

    The format comes from the file's content, never its name. The declared size is checked before
    any pixel is decoded. EXIF orientation is applied, embedded colour profiles are converted to
    sRGB, then the pixels are re-encoded in the same format so EXIF (GPS included), text chunks,
    comments and any bytes appended after the image are gone.

    GIF, BMP, TIFF and AVIF (when allowed) are decoded the same way and stored as PNG.

    Raises UnsupportedImage for other formats (SVG, HEIC, ...), animations and damaged files, and
    ImageTooLarge beyond ``max_pixels`` (including what Pillow calls a decompression bomb).
    """
    accepted = {name.upper() for name in allowed}
    if not accepted or not accepted <= set(ALL_UPLOAD_FORMATS):
        raise ValueError(f"allowed formats must be among {', '.join(ALL_UPLOAD_FORMATS)}, got {sorted(allowed)}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")

    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedImage(f"{_describe_unsupported(data)}; upload {_format_list(accepted)}")
    if image_format not in accepted:
        raise UnsupportedImage(f"{image_format} images are not accepted here; use {_format_list(accepted)}")
    if image_format == "WEBP":
        # libwebp allocates the whole canvas when the file is opened, so check the header first.
        _check_pixels(_webp_canvas_size(data), max_pixels)

    try:
        opened = Image.open(io.BytesIO(data), formats=[image_format])
    except _BOMB_ERRORS:
        raise _over_limit(max_pixels) from None
    except _DECODE_ERRORS as error:
        raise UnsupportedImage(f"not a valid {image_format} image: {error}") from error

    with opened:
        _check_pixels(opened.size, max_pixels)
        if getattr(opened, "n_frames", 1) > 1:
            raise UnsupportedImage("animated images are not accepted; upload a single still image")
        # Keep the source's chroma subsampling so a crisp 4:4:4 JPEG does not lose colour detail.
        jpeg_sampling = JpegImagePlugin.get_sampling(opened) if image_format == "JPEG" else -1
        try:
            opened.load()
        except _BOMB_ERRORS:
            raise _over_limit(max_pixels) from None
        except _DECODE_ERRORS as error:
            raise UnsupportedImage(f"damaged or truncated {image_format} image: {error}") from error
        image = _normalize_mode(_to_srgb(_apply_orientation(opened)))

    image.info = {}  # nothing from the original file may reach the encoder
    stored_format = "PNG" if image_format in CONVERTED_FORMATS else image_format
    clean = _encode_upload(image, stored_format, lossless_webp=_webp_is_lossless(data), jpeg_sampling=jpeg_sampling)
    return DecodedUpload(
        image=image,
        data=clean,
        format=stored_format,
        mime_type=MIME_TYPES[stored_format],
        width=image.width,
        height=image.height,
        sha256=sha256_hex(clean),
    )


def sniff_format(data: bytes) -> str | None:
    """The upload format the content starts like (never the name), or None."""
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    return None


def _describe_unsupported(data: bytes) -> str:
    if not data:
        return "the file is empty"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and b"<svg" in data[:4096].lower():
        return "SVG images are not accepted"
    if data[4:8] == b"ftyp":
        return "HEIC images are not accepted"
    return "the file is not a recognised image"


def _format_list(formats: Collection[str]) -> str:
    return ", ".join(name if name != "WEBP" else "WebP" for name in ALL_UPLOAD_FORMATS if name in formats)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise UnsupportedImage(f"image declares an empty size {width}x{height}")
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS is not None:
        # Anything Pillow would warn about as a decompression bomb is refused outright (the settings
        # keep the configured limit below Pillow's, so this only binds direct callers).
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    if width * height > limit:
        raise ImageTooLarge(f"image is {width}x{height} ({width * height:,} pixels); the limit is {limit:,} pixels")


def _over_limit(max_pixels: int) -> ImageTooLarge:
    # Pillow's own text names its internal limit, not ours: never pass it on.
    return ImageTooLarge(f"the image has more than {max_pixels:,} pixels, the limit")


def _webp_canvas_size(data: bytes) -> tuple[int, int]:
    """The canvas size a WebP file declares in its first chunk (RIFF container, VP8/VP8L/VP8X)."""
    if len(data) < 30:
        raise UnsupportedImage("truncated WebP image")
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    raise UnsupportedImage("not a valid WebP image: unknown first chunk")


def _webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP's image data is VP8L (lossless), so re-encoding should stay lossless."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    offset = 12
    while offset + 8 <= len(data):
        chunk = data[offset : offset + 4]
        if chunk == b"VP8L":
            return True
        if chunk == b"VP8 ":
            return False
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        offset += 8 + size + (size & 1)
    return False


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # A malformed EXIF block is dropped with the rest of the metadata; the pixels are fine.
        return image.copy()


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels tagged with a colour profile to sRGB, since the profile will not be kept."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _srgb_profile(), outputMode=output_mode)
    except (ImageCms.PyCMSError, *_DECODE_ERRORS):
        # An unusable profile: keep the pixels as they are rather than refuse the image.
        return image
    return converted if converted is not None else image


def _normalize_mode(image: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, RGB or RGBA (the modes the studio stores and providers take)."""
    mode = image.mode
    has_transparency = "transparency" in image.info
    if mode == "RGBA" or (mode in ("L", "RGB") and not has_transparency):
        return image
    if mode in _SIXTEEN_BIT_MODES:
        # 16-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "1":
        return image.convert("L")
    if mode in ("LA", "La", "PA", "RGBa") or has_transparency:
        return image.convert("RGBA")
    return image.convert("RGB")


def _encode_upload(image: Image.Image, image_format: str, *, lossless_webp: bool, jpeg_sampling: int) -> bytes:
    buffer = io.BytesIO()
    if image_format == "PNG":
        image.save(buffer, format="PNG", compress_level=UPLOAD_PNG_COMPRESS_LEVEL)
    elif image_format == "JPEG":
        if image.mode == "RGBA":
            # Unreachable from decode_upload (no JPEG decodes to RGBA); kept for direct callers.
            image = image.convert("RGB")  # pragma: no mutate
        options = {"subsampling": jpeg_sampling} if jpeg_sampling in (0, 1, 2) else {}
        image.save(buffer, format="JPEG", quality=UPLOAD_JPEG_QUALITY, **options)
    else:
        if lossless_webp:
            image.save(buffer, format="WEBP", lossless=True, method=_WEBP_METHOD)
        else:
            image.save(buffer, format="WEBP", quality=UPLOAD_WEBP_QUALITY, method=_WEBP_METHOD)
    return buffer.getvalue()


def _check_png_keyword(key: str) -> None:
    try:
        encoded = key.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"PNG metadata key {key!r} must be Latin-1") from None
    if not 1 <= len(encoded) <= 79 or "\x00" in key or key != key.strip() or "  " in key:
        raise ValueError(f"PNG metadata key {key!r} must be 1-79 characters without NUL or surrounding spaces")
