"""Decoding uploaded bytes into an upright RGB uint8 array, or a precise InputError."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emotionlib.errors import InputError

# Pillow's names for the formats the API accepts (MPO: JPEGs from phone cameras).
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}
DEFAULT_MAX_PIXELS = 50_000_000

# Signatures of common non-image uploads, to say what was sent instead of an image.
_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"<!doctype html", "an HTML document"),
    (b"<html", "an HTML document"),
    (b"<?xml", "an XML document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"{", "JSON text"),
)


def _describe_non_image(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    for signature, name in _SIGNATURES:
        if head.startswith(signature.lower()):
            return name
    try:
        data[:1024].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "data that is not a JPEG or PNG image"


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 RGB array; transparency is composited over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grayscale: scale the real range into 8 bits rather than clipping.
        values = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values * (255.0 / high), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max() <= 1.0 else 1.0
        gray = np.clip(values * scale, 0, 255).round().astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX ...
    return np.asarray(image, dtype=np.uint8)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG bytes into an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises InputError: 400 for empty, corrupt, truncated or non-image data; 415 for an
    image format other than JPEG/PNG; 413 when the image has more than max_pixels pixels
    (checked from the header, before anything is decompressed).
    """
    if not data:
        raise InputError(400, "empty_file", "the uploaded file 'image' is empty")
    try:
        with warnings.catch_warnings():
            # The pixel limit is enforced below, from the header, against max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError(400, "not_an_image",
                         f"the uploaded file is {_describe_non_image(data)}, not a JPEG or PNG image") from None
    except Image.DecompressionBombError:
        raise InputError(413, "image_too_large",
                         f"the image has too many pixels (limit {max_pixels:,})") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise InputError(400, f"{reason}_image", f"the image is {reason}: its header cannot be read ({exc})") from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise InputError(415, "unsupported_image_type",
                             f"{image.format} images are not accepted; send a JPEG or PNG")
        width, height = image.size
        if width < 1 or height < 1:
            raise InputError(400, "corrupt_image", "the image has no pixels")
        if width * height > max_pixels:
            raise InputError(413, "image_too_large",
                             f"the image is {width}x{height} = {width * height:,} pixels; "
                             f"the limit is {max_pixels:,}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _to_rgb(upright)
        except InputError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
            raise InputError(400, f"{reason}_image",
                             f"the {ACCEPTED_FORMATS[image.format].upper()} data is {reason} "
                             f"and cannot be decoded ({exc})") from None
