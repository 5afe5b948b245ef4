"""Decoding of every input kind the API accepts or must refuse."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from emotionlib.decode import decode_image
from emotionlib.errors import InputError
from emotionlib.serving.errors import status_of
from tests.helpers import bomb_png, encode


def gradient(width=64, height=48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2))


def assert_rgb(array, width, height):
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)


@pytest.mark.parametrize("kwargs", [{}, {"progressive": True}, {"quality": 30}])
def test_jpeg_baseline_and_progressive(kwargs):
    out = decode_image(encode(gradient(), "JPEG", **kwargs))
    assert_rgb(out, 64, 48)
    assert abs(int(out[0, -1, 0]) - 255) < 12  # right edge is red-ish, as drawn


def test_png_rgb_is_lossless():
    image = gradient()
    assert np.array_equal(decode_image(encode(image, "PNG")), np.asarray(image))


def test_png_grayscale():
    gray = Image.fromarray(np.full((20, 30), 77, np.uint8), "L")
    out = decode_image(encode(gray, "PNG"))
    assert_rgb(out, 30, 20)
    assert (out == 77).all()


def test_png_16_bit_grayscale_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, 0)
    image = Image.fromarray(values)  # uint16 -> mode I;16
    assert image.mode == "I;16"
    out = decode_image(encode(image, "PNG"))
    assert_rgb(out, 3, 4)
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_png_16_bit_rgb():
    import cv2

    bgr16 = np.zeros((6, 5, 3), np.uint16)
    bgr16[..., 2] = 65535  # red at full 16-bit intensity
    ok, data = cv2.imencode(".png", bgr16)
    assert ok
    out = decode_image(data.tobytes())
    assert_rgb(out, 5, 6)
    assert out[0, 0].tolist() == [255, 0, 0]


def test_png_palette_with_transparency_over_white():
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (5, 0, 10, 10))
    image.info["transparency"] = 0  # palette entry 0 (red) is fully transparent
    out = decode_image(encode(image, "PNG", transparency=0))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 9].tolist() == [0, 0, 255]


def test_png_rgba_composited_over_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, 4:] = [0, 200, 0, 255]
    out = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 7].tolist() == [0, 200, 0]


def test_cmyk_jpeg():
    cmyk = gradient().convert("CMYK")
    out = decode_image(encode(cmyk, "JPEG", quality=95))
    expected = np.asarray(cmyk.convert("RGB")).astype(int)
    assert_rgb(out, 64, 48)
    assert np.abs(out.astype(int) - expected).mean() < 8


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (40, 20, 3)  # portrait as a viewer shows it
    assert out[2, 10, 0] > 200 and out[2, 10, 1] < 60  # the red strip is now on top
    assert out[-3, 10].min() > 200


def test_tiny_image():
    out = decode_image(encode(Image.new("RGB", (1, 1), "gray"), "PNG"))
    assert_rgb(out, 1, 1)


def test_large_image_within_limit():
    big = Image.new("RGB", (6000, 4000), "white")
    assert_rgb(decode_image(encode(big, "JPEG", quality=50)), 6000, 4000)


def expect(data, status, code=None, **kwargs):
    with pytest.raises(InputError) as info:
        decode_image(data, **kwargs)
    assert status_of(info.value) == status, info.value.message
    if code:
        assert info.value.code == code
    assert info.value.message
    return info.value


def test_decompression_bomb_refused_before_decoding():
    data = bomb_png(10_000, 6_000)  # 60 megapixels
    assert len(data) < 200_000
    error = expect(data, 413, "image_too_large")
    assert "60,000,000" in error.message


def test_pixel_limit_is_configurable():
    expect(encode(Image.new("RGB", (100, 100)), "PNG"), 413, max_pixels=5_000)


def test_empty():
    expect(b"", 400, "empty_file")


def test_random_bytes():
    expect(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(), 400, "not_an_image")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt):
    data = encode(gradient(256, 256), fmt)
    error = expect(data[: len(data) // 2], 400)
    assert error.code in ("truncated_image", "corrupt_image")


@pytest.mark.parametrize("data, what", [
    (b"hello, this is a text file\n", "text"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
])
def test_non_images_say_what_they_are(data, what):
    error = expect(data, 400, "not_an_image")
    assert what in error.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_image_types_are_unsupported(fmt):
    error = expect(encode(gradient(), fmt), 415, "unsupported_image_type")
    assert fmt in error.message or (fmt == "WEBP" and "WEBP" in error.message.upper())
