"""Upload cleaning, colours and pixel modes: embedded colour profiles are applied and dropped, and
every decoded mode is stored as greyscale, RGB or RGBA without losing transparency or range.

The colour profiles are written here byte by byte (ICC version 2), each one chosen so that applying
it or not gives visibly different pixels; an sRGB profile would change nothing and prove nothing.
"""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageDraw, JpegImagePlugin

from imagestudio.assets.images import ALL_UPLOAD_FORMATS, decode_upload, encode_png, load_image
from tests.assets.test_images import MAX_PIXELS, _encode, _mean_difference, _pattern

# -- writing ICC profiles ---------------------------------------------------------------------------

_D50 = (0.9642, 1.0, 0.8249)
# The sRGB primaries as an ICC profile states them (adapted to D50).
_RED, _GREEN, _BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15fixed16(value) for value in xyz)


def _gamma_tag(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def _icc_profile(device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """A version 2 profile: the 128-byte header, the tag table, then each tag padded to four bytes."""
    table_size = 4 + 12 * len(tags)
    entries, body = b"", b""
    for signature, payload in tags.items():
        payload += b"\0" * (-len(payload) % 4)
        entries += signature + struct.pack(">II", 128 + table_size + len(body), len(payload))
        body += payload
    header = (
        struct.pack(">I", 128 + table_size + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + pcs
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + b"".join(_s15fixed16(value) for value in _D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + body


def _rgb_profile(red: tuple[float, float, float], blue: tuple[float, float, float]) -> bytes:
    trc = _gamma_tag(2.2)
    return _icc_profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"wtpt": _xyz_tag(_D50),
            b"rXYZ": _xyz_tag(red),
            b"gXYZ": _xyz_tag(_GREEN),
            b"bXYZ": _xyz_tag(blue),
            b"rTRC": trc,
            b"gTRC": trc,
            b"bTRC": trc,
        },
    )


# A display whose first channel lights the blue phosphor and whose third lights the red one: a
# pixel stored as (255, 0, 0) under this profile is pure blue.
_SWAPPED_RGB_PROFILE = _rgb_profile(red=_BLUE, blue=_RED)


def _sepia_cmyk_profile() -> bytes:
    """A press profile (lut8, CMYK to Lab) that prints any coloured ink sepia: no ink is white
    paper, black ink is black, and cyan, magenta or yellow come out brown."""
    white, black, brown = bytes([255, 128, 128]), bytes([0, 128, 128]), bytes([102, 148, 168])  # L*, a*, b*
    grid = b"".join(
        black if k else white if cyan + magenta + yellow == 0 else brown
        for cyan in (0, 1)
        for magenta in (0, 1)
        for yellow in (0, 1)
        for k in (0, 1)
    )
    ramp = bytes(range(256))
    identity = b"".join(_s15fixed16(value) for value in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + ramp * 4 + grid + ramp * 3
    return _icc_profile(b"prtr", b"CMYK", b"Lab ", {b"wtpt": _xyz_tag(_D50), b"A2B0": lut})


def _linear_grey_profile() -> bytes:
    return _icc_profile(b"mntr", b"GRAY", b"XYZ ", {b"wtpt": _xyz_tag(_D50), b"kTRC": _gamma_tag(1.0)})


def _channels_swapped(image: Image.Image) -> Image.Image:
    red, green, blue, *alpha = image.split()
    return Image.merge(image.mode, [blue, green, red, *alpha])


# -- colour profiles ----------------------------------------------------------------------------------


def test_an_rgb_upload_is_shown_in_the_colours_its_profile_describes() -> None:
    image = _pattern()  # a red top-left corner on a blue background
    upload = decode_upload(_encode(image, "PNG", icc_profile=_SWAPPED_RGB_PROFILE), max_pixels=MAX_PIXELS)

    assert upload.image.mode == "RGB"
    stored = load_image(upload.data)
    assert stored.mode == "RGB"
    assert "icc_profile" not in stored.info
    assert stored.getpixel((2, 2)) == (0, 0, 255)  # stored red under this profile is blue
    assert _mean_difference(stored, _channels_swapped(image)) < 6


def test_a_transparent_upload_keeps_its_alpha_through_the_profile() -> None:
    image = _pattern(mode="RGBA")
    ImageDraw.Draw(image).rectangle((60, 0, 63, 3), fill=(255, 0, 0, 0))
    image.putpixel((2, 2), (255, 0, 0, 128))
    upload = decode_upload(_encode(image, "PNG", icc_profile=_SWAPPED_RGB_PROFILE), max_pixels=MAX_PIXELS)

    assert upload.image.mode == "RGBA"
    stored = load_image(upload.data)
    assert stored.mode == "RGBA"
    assert stored.getpixel((2, 2)) == (0, 0, 255, 128)
    assert stored.getpixel((61, 1))[3] == 0
    assert stored.getchannel("A").tobytes() == image.getchannel("A").tobytes()
    assert _mean_difference(stored, _channels_swapped(image)) < 6


def test_a_cmyk_jpeg_is_printed_through_its_press_profile() -> None:
    cyan = Image.new("CMYK", (32, 16), (255, 0, 0, 0))
    ImageDraw.Draw(cyan).rectangle((16, 0, 31, 15), fill=(0, 0, 0, 255))  # the right half is black ink
    original = _encode(cyan, "JPEG", quality=95, icc_profile=_sepia_cmyk_profile())
    upload = decode_upload(original, max_pixels=MAX_PIXELS)

    assert upload.format == "JPEG"
    assert upload.image.mode == "RGB"
    with Image.open(io.BytesIO(upload.data)) as stored:
        assert stored.mode == "RGB"
        assert "icc_profile" not in stored.info
        red, green, blue = stored.convert("RGB").getpixel((4, 8))
        # Sepia, where a fixed CMYK formula would give cyan (0, 255, 255).
        assert red > green > blue
        assert red - blue > 60
        assert max(stored.convert("RGB").getpixel((28, 8))) < 30


def test_a_greyscale_mask_with_a_grey_profile_stays_single_channel() -> None:
    mask = Image.new("L", (16, 16), 0)
    ImageDraw.Draw(mask).rectangle((4, 4, 11, 11), fill=100)
    upload = decode_upload(_encode(mask, "PNG", icc_profile=_linear_grey_profile()), max_pixels=MAX_PIXELS)
    stored = load_image(upload.data)
    assert upload.image.mode == stored.mode == "L"
    assert stored.tobytes() == mask.tobytes()


# -- pixel modes --------------------------------------------------------------------------------------


def test_greyscale_with_alpha_becomes_rgba_and_stays_transparent() -> None:
    image = Image.new("LA", (16, 16), (200, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 3, 3), fill=(50, 0))
    upload = decode_upload(_encode(image, "PNG"), max_pixels=MAX_PIXELS)
    assert upload.image.mode == "RGBA"
    stored = load_image(upload.data)
    assert stored.getpixel((1, 1))[3] == 0
    assert stored.getpixel((10, 10)) == (200, 200, 200, 255)


def test_a_black_and_white_png_is_stored_as_greyscale() -> None:
    bilevel = Image.new("1", (16, 8), 0)
    ImageDraw.Draw(bilevel).rectangle((8, 0, 15, 7), fill=1)
    upload = decode_upload(_encode(bilevel, "PNG"), max_pixels=MAX_PIXELS)
    assert upload.image.mode == "L"
    stored = load_image(upload.data)
    assert stored.mode == "L"
    assert (stored.getpixel((2, 2)), stored.getpixel((12, 2))) == (0, 255)


def test_a_big_endian_sixteen_bit_tiff_is_scaled_to_eight_bits() -> None:
    values = [65535] + [32768] * 15
    deep = Image.frombytes("I;16B", (4, 4), struct.pack(">16H", *values))
    original = _encode(deep, "TIFF")
    assert original.startswith(b"MM\x00*")  # Motorola byte order, as many scanners write it
    upload = decode_upload(original, max_pixels=MAX_PIXELS, allowed=ALL_UPLOAD_FORMATS)
    stored = load_image(upload.data)
    assert stored.mode == "L"
    assert (stored.getpixel((0, 0)), stored.getpixel((2, 2))) == (255, 128)


def test_a_greyscale_jpeg_stays_a_single_channel_jpeg() -> None:
    grey = _pattern(mode="L")
    upload = decode_upload(_encode(grey, "JPEG", quality=95), max_pixels=MAX_PIXELS)
    with Image.open(io.BytesIO(upload.data)) as stored:
        assert stored.format == "JPEG"
        assert stored.mode == "L"
        assert JpegImagePlugin.get_sampling(stored) == -1  # one component, nothing to subsample


@pytest.mark.parametrize("mode", ["PA", "RGBa"])
def test_png_outputs_keep_the_transparency_of_other_alpha_modes(mode: str) -> None:
    image = Image.new("RGBA", (8, 8), (40, 120, 200, 255))
    image.putpixel((0, 0), (40, 120, 200, 0))
    with Image.open(io.BytesIO(encode_png(image.convert(mode), {}))) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((0, 0))[3] == 0
        assert decoded.getpixel((4, 4)) == (40, 120, 200, 255)
