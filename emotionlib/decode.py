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


# Modes are converted to RGB a tile of at most this many pixels at a time, straight into the
# result: the only full-size memory besides Pillow's own image is the result, 3 bytes per
# pixel (np.asarray of a whole image made a copy, Pillow's tobytes another while joining its
# chunks, and a mode conversion a third: 11 bytes per pixel of a grayscale PNG at the peak).
TILE_PIXELS = 1 << 18
_INTEGER_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> a new, writable (H, W, 3) uint8 RGB array; transparency is
    composited over white, 16/32-bit and float grayscale scaled into 8 bits."""
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    convert = _tile_converter(image)
    tile_w = min(width, TILE_PIXELS)
    rows = max(1, TILE_PIXELS // tile_w)
    for y in range(0, height, rows):
        for x in range(0, width, tile_w):
            tile = image.crop((x, y, min(width, x + tile_w), min(height, y + rows)))
            out[y:y + tile.height, x:x + tile.width] = convert(tile)
    return out


def _tile_converter(image: Image.Image):
    """A function from a tile of ``image`` to its uint8 array of 3 channels, or 1 to repeat.
    Scales that depend on the whole image are decided here, from its extrema."""
    if image.mode in _INTEGER_GRAY:
        # 16/32-bit grayscale: scale the real range into 8 bits rather than clipping.
        high = 65535.0 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 255.0
        return lambda tile: _scaled_gray(tile, 255.0 / high)
    if image.mode == "F":
        return lambda tile, scale=255.0 if image.getextrema()[1] <= 1.0 else 1.0: _scaled_gray(tile, scale)
    if image.mode == "L":
        return lambda tile: np.asarray(tile)[:, :, None]
    return _rgb_tile


def _scaled_gray(tile: Image.Image, factor: float) -> np.ndarray:
    values = np.asarray(tile, dtype=np.float64)
    return np.clip(values * factor, 0, 255).round().astype(np.uint8)[:, :, None]


def _rgb_tile(tile: Image.Image) -> np.ndarray:
    if tile.mode == "P":
        tile = tile.convert("RGBA" if "transparency" in tile.info else "RGB")
    if tile.mode in ("LA", "La", "PA"):
        tile = tile.convert("RGBA")
    if tile.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", tile.size, (255, 255, 255, 255))
        tile = Image.alpha_composite(background, tile.convert("RGBA"))
    if tile.mode != "RGB":
        tile = tile.convert("RGB")  # 1, CMYK, YCbCr, LAB, HSV, RGBX ...
    return np.asarray(tile, dtype=np.uint8)


# EXIF orientation (tag 0x0112) -> the view of the stored (H, W, 3) array that shows it upright
# (numpy views, copied once into a contiguous array after Pillow's image is gone: Pillow's
# transpose made a second full image beside the first).
_ORIENTATION = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                       # mirrored left to right
    3: lambda a: a[::-1, ::-1],                    # turned 180 degrees
    4: lambda a: a[::-1],                          # mirrored top to bottom
    5: lambda a: a.transpose(1, 0, 2),             # transposed
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],    # turned 90 degrees clockwise to show it
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda a: a.transpose(1, 0, 2)[::-1],       # turned 90 degrees anticlockwise to show it
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


def _opened(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image opened from its header (nothing decompressed yet) and its kind ("JPEG" or
    "PNG"), once every check that needs no decoding passed; InputError otherwise."""
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
    try:
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
    except BaseException:
        image.close()
        raise
    return image, kind


def image_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of JPEG/PNG bytes as stored, read from the header without decoding,
    after the checks decode_picture makes before decoding (the same InputErrors): what a
    caller needs to know how much memory decoding will take."""
    image, _ = _opened(data, max_pixels)
    with image:
        return image.size


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
    image, kind = _opened(data, max_pixels)
    with image:
        width, height = image.size
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if min_side and image.format in ("JPEG", "MPO") and max(width, height) > min_side:
                    image.draft(None, _draft_size(width, height, min_side))
                image.load()
                turn = orientation(image)
                stored = _to_rgb(image)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - every decoding failure is the data's fault
            raise _undecodable(f"{kind} data", " and cannot be decoded", exc) from None
    del image  # Pillow's pixels go before the turned copy is made
    rgb = stored if turn == 1 else np.ascontiguousarray(_ORIENTATION[turn](stored))
    del stored
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
