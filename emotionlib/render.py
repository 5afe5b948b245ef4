"""The annotated image: each face's box and a ``happy 0.94`` label, one colour per emotion.

Drawn on the upright image (EXIF orientation already applied by decoding), so the
result shows upright everywhere and carries no orientation tag. Line width and text
size grow with the image, so labels stay legible when a viewer scales the picture to
fit a screen, up to a bound (MAX_LINE, MAX_FONT): any shape inside the pixel limit, a
1x300000 strip too, gets labels of bounded size in bounded time. The output format
follows the input: JPEG in, JPEG out; PNG in, PNG out.

Memory: boxes are drawn into the image array itself (``draw_into``) and each label is
rendered on its own small image and copied in, so drawing needs no copy of the photo;
OpenCV encodes the array as it is. ``annotate(..., in_place=True)`` (the service) therefore
holds the image and the encoded bytes, nothing more (emotionlib.serving.budget counts it).
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
EMOTION_COLOURS: dict[str, str] = {
    "happy": "#F0E442",     # yellow
    "sad": "#0072B2",       # blue
    "angry": "#D55E00",     # vermillion
    "fear": "#CC79A7",      # reddish purple
    "surprise": "#009E73",  # bluish green
    "neutral": "#BBBBBB",   # grey
}
OUTLINE = (0, 0, 0)
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 90
# The largest line width and label text size: reached at a longer side of about 9,600 and
# 9,000 pixels; beyond that labels stay this size (a 1x300000 image asked for a 6,667-pixel
# font, which Pillow refused as a decompression bomb, and FreeType a 66,667-pixel one).
MAX_LINE = 24
MAX_FONT = 200


def output_format(data: bytes) -> str:
    """'png' for PNG bytes, else 'jpeg' (decoding has already refused anything else)."""
    return "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def sizes(width: int, height: int) -> tuple[int, int]:
    """(line width, font size) in pixels for an image of this size: about 1/400 and 1/45 of
    the longer side, at least 2 and 12, at most MAX_LINE and MAX_FONT."""
    side = max(width, height)
    return min(MAX_LINE, max(2, round(side / 400))), min(MAX_FONT, max(12, round(side / 45)))


def label_of(face: Mapping) -> str:
    """``happy 0.94``; a face of a video track: ``#2 happy 0.94``."""
    track = f"#{face['track_id']} " if face.get("track_id") is not None else ""
    return f"{track}{face['emotion']} {face['confidence']:.2f}"


@functools.lru_cache(maxsize=16)
def _font(size: int):
    return ImageFont.load_default(size=size)


def _outline(rgb: np.ndarray, x0: int, y0: int, x1: int, y1: int, width: int, colour) -> None:
    """A rectangle outline ``width`` pixels wide inside (x0, y0)-(x1, y1) (inclusive), as
    Pillow's ImageDraw.rectangle draws it, clipped to the image."""
    height_, width_ = rgb.shape[:2]
    if x1 < x0 or y1 < y0:
        return
    for top, bottom, left, right in ((y0, min(y1, y0 + width - 1), x0, x1),        # top
                                     (max(y0, y1 - width + 1), y1, x0, x1),        # bottom
                                     (y0, y1, x0, min(x1, x0 + width - 1)),        # left
                                     (y0, y1, max(x0, x1 - width + 1), x1)):       # right
        top, left = max(0, top), max(0, left)
        bottom, right = min(height_ - 1, bottom), min(width_ - 1, right)
        if top <= bottom and left <= right:
            rgb[top:bottom + 1, left:right + 1] = colour


def _label(text: str, font, colour, pad: int) -> np.ndarray:
    """The label: text on its colour, with a dark 1-pixel border (an RGB array)."""
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 2 * pad, bottom - top + 2 * pad), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width - 1, image.height - 1), outline=OUTLINE)
    draw.text((pad - left, pad - top), text, font=font, fill=_text_colour(colour))
    return np.asarray(image)


def _paste(rgb: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Copy patch into rgb at (x, y), the part inside the image."""
    height, width = rgb.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + patch.shape[1]), min(height, y + patch.shape[0])
    if x0 < x1 and y0 < y1:
        rgb[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def draw_into(rgb: np.ndarray, faces: Sequence[Mapping]) -> np.ndarray:
    """Draw every face's box and label into the (H, W, 3) uint8 RGB array itself; returns it."""
    height, width = rgb.shape[:2]
    line, font_size = sizes(width, height)
    font = _font(font_size)
    pad = max(2, font_size // 5)
    for face in faces:
        x, y, w, h = (int(v) for v in face["bounding_box"])
        colour = _rgb(EMOTION_COLOURS.get(face["emotion"], "#FFFFFF"))
        # A dark rim around the coloured line keeps it visible on light and dark photos.
        _outline(rgb, x, y, x + w - 1, y + h - 1, line + 2, OUTLINE)
        if w > 2 and h > 2:  # a box 1 or 2 pixels wide (detect=false on such an image) has no inside
            _outline(rgb, x + 1, y + 1, x + w - 2, y + h - 2, line, colour)
        label = _label(label_of(face), font, colour, pad)
        box_h, box_w = label.shape[:2]
        lx = min(max(0, x), max(0, width - box_w))
        ly = y - box_h if y - box_h >= 0 else y  # above the box, or inside it at the top
        _paste(rgb, label, lx, ly)
    return rgb


def draw_faces(image: Image.Image, faces: Sequence[Mapping]) -> Image.Image:
    """A copy of ``image`` (any mode; RGB out) with every face's box and label drawn on it."""
    return Image.fromarray(draw_into(np.array(image.convert("RGB")), faces))


# libpng, under OpenCV, refuses an image wider or taller than this (its default user limits).
PNG_MAX_SIDE = 1_000_000


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    """JPEG (quality JPEG_QUALITY) or PNG bytes of an RGB array; the array's channels are
    swapped in place to OpenCV's BGR for the encoder (so it is spent afterwards)."""
    import cv2

    if fmt == "png" and max(rgb.shape[:2]) > PNG_MAX_SIDE:
        return _png_rows(rgb)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if fmt == "jpeg" else []
    ok, buffer = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {fmt}")
    return buffer.tobytes()


def annotate(rgb: np.ndarray, faces: Sequence[Mapping], fmt: str = "jpeg", in_place: bool = False) -> bytes:
    """Encoded (JPEG or PNG) bytes of the upright RGB array with the faces drawn. in_place:
    draw into ``rgb`` itself and leave it spent (no copy of the image; the service's way)."""
    owned = in_place and rgb.flags.c_contiguous and rgb.flags.writeable
    image = rgb if owned else np.array(rgb, dtype=np.uint8, copy=True)
    return encode(draw_into(image, faces), fmt)


def _png_rows(rgb: np.ndarray) -> bytes:
    """A PNG of an RGB array of any size, compressed row by row (no filter), each piece its
    own IDAT chunk: for the strips OpenCV's libpng refuses (a 3000000x1 image), with no copy
    of the image and one of the compressed data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = rgb.shape[:2]
    deflate = zlib.compressobj(6)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    step = 1 << 20
    for row in rgb:
        data = memoryview(np.ascontiguousarray(row)).cast("B")
        pieces = [b"\x00"] + [data[at:at + step] for at in range(0, len(data), step)]  # views, no copies
        for piece in pieces:
            compressed = deflate.compress(piece)
            if compressed:
                parts.append(chunk(b"IDAT", compressed))
    parts += [chunk(b"IDAT", deflate.flush()), chunk(b"IEND", b"")]
    return b"".join(parts)
