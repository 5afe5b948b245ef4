"""Decoding uploaded bytes into an upright RGB uint8 array, or a precise InputError."""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from emotionlib.errors import InputError

# Pillow's names for the formats the API accepts (MPO: JPEGs from phone cameras).
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}
DEFAULT_MAX_PIXELS = 50_000_000
# The JPEG decoder passes over every block of the image once per scan, and a scan can be a
# dozen bytes: 3,000 repeated scans made a 58 KB 2000x2000 JPEG take 12 s to decode, 20,000
# in a 6000x6000 one minutes. Encoders write 1 scan (baseline) or about 10 (progressive); an
# EXIF thumbnail or the frames of an MPO add a few. Scans are counted by their SOS marker
# (FF DA), which entropy-coded data never contains, so the count can only be too high.
MAX_JPEG_SCANS = 100

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


# EXIF orientation (tag 0x0112) -> the transpose that shows the image upright.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True)
class Picture:
    """A decoded upload: ``rgb`` is upright (H, W, 3) uint8, possibly decoded at reduced size.

    ``width`` x ``height`` is the size of the full upright image (what a viewer shows and
    what boxes are reported in); ``scale_x`` / ``scale_y`` are full-image pixels per pixel
    of ``rgb`` (1.0 when decoded at full size).
    """
    rgb: np.ndarray
    width: int
    height: int

    @property
    def scale_x(self) -> float:
        return self.width / self.rgb.shape[1]

    @property
    def scale_y(self) -> float:
        return self.height / self.rgb.shape[0]

    @property
    def reduced(self) -> bool:
        return self.rgb.shape[:2] != (self.height, self.width)


def orientation(image: Image.Image) -> int:
    """The EXIF orientation 1-8, or 1 when there is none or it cannot be read.

    A photo with a broken EXIF block is still a photo: Pillow raises struct.error,
    TypeError, AttributeError, ... on malformed tags, and then it is shown as stored.
    """
    try:
        value = image.getexif().get(0x0112, 1)
        return value if isinstance(value, int) and value in _ORIENTATION else 1
    except Exception:  # noqa: BLE001 - any failure means: no usable orientation
        return 1


def _draft_size(width: int, height: int, min_side: int) -> tuple[int, int]:
    """The size to ask Pillow's JPEG draft mode for so the longer side stays >= min_side."""
    factor = min_side / max(width, height)
    return max(1, math.ceil(width * factor)), max(1, math.ceil(height * factor))


def decode_picture(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Picture:
    """Decode JPEG/PNG bytes into an upright RGB Picture, EXIF orientation applied.

    ``min_side``: the caller needs only an image whose longer side is at least this many
    pixels; a JPEG larger than that is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's
    DCT scaling, Pillow's draft mode), which saves the decoding time and memory of the
    full bitmap. PNG has no such mode and is always decoded at full size.

    Raises InputError: 400 for empty, corrupt, truncated or non-image data and for a JPEG
    of more than MAX_JPEG_SCANS scans; 415 for an image format other than JPEG/PNG; 413
    when the image has more than max_pixels pixels (checked from the header, before
    anything is decompressed).
    """
    if not data:
        raise InputError("empty_file", "the uploaded file 'image' is empty")
    try:
        with warnings.catch_warnings():
            # The pixel limit is enforced below, from the header, against max_pixels; Pillow's
            # warnings about malformed metadata are the upload's problem, not the log's.
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError("not_an_image",
                         f"the uploaded file is {_describe_non_image(data)}, not a JPEG or PNG image") from None
    except Image.DecompressionBombError:
        raise InputError("image_too_large",
                         f"the image has too many pixels (limit {max_pixels:,})") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for malformed headers
        raise _undecodable("image", ": its header cannot be read", exc) from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise InputError("unsupported_image_type",
                             f"{image.format} images are not accepted; send a JPEG or PNG")
        width, height = image.size
        if width < 1 or height < 1:
            raise InputError("corrupt_image", "the image has no pixels")
        if width * height > max_pixels:
            raise InputError("image_too_large",
                             f"the image is {width}x{height} = {width * height:,} pixels; "
                             f"the limit is {max_pixels:,}")
        kind = ACCEPTED_FORMATS[image.format].upper()
        if kind == "JPEG" and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
            raise InputError("too_many_scans", f"the JPEG has {scans:,} scans; at most {MAX_JPEG_SCANS} are "
                             "accepted (each costs a pass over the whole image)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if min_side and image.format in ("JPEG", "MPO") and max(width, height) > min_side:
                    image.draft(None, _draft_size(width, height, min_side))
                image.load()
                turn = orientation(image)
                upright = image.transpose(_ORIENTATION[turn]) if turn != 1 else image
                rgb = _to_rgb(upright)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - every decoding failure is the data's fault
            raise _undecodable(f"{kind} data", " and cannot be decoded", exc) from None
    if turn in _SWAPS_AXES:
        width, height = height, width
    return Picture(rgb=rgb, width=width, height=height)


def _undecodable(what: str, consequence: str, exc: Exception) -> InputError:
    reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
    detail = str(exc)[:200] or type(exc).__name__
    return InputError(f"{reason}_image", f"the {what} is {reason}{consequence} ({detail})")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode JPEG/PNG bytes at full size into an (H, W, 3) uint8 RGB array, upright.

    Same errors as decode_picture.
    """
    return decode_picture(data, max_pixels).rgb
