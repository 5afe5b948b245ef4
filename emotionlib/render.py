"""The annotated image: each face's box and a ``happy 0.94`` label, one colour per emotion.

Drawn on the upright image (EXIF orientation already applied by decoding), so the
result shows upright everywhere and carries no orientation tag. Line width and text
size grow with the image, so labels stay legible when a viewer scales the picture to
fit a screen. The output format follows the input: JPEG in, JPEG out; PNG in, PNG out.
"""
from __future__ import annotations

import io
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


def output_format(data: bytes) -> str:
    """'png' for PNG bytes, else 'jpeg' (decoding has already refused anything else)."""
    return "png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "jpeg"


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def sizes(width: int, height: int) -> tuple[int, int]:
    """(line width, font size) in pixels for an image of this size."""
    side = max(width, height)
    return max(2, round(side / 400)), max(12, round(side / 45))


def label_of(face: Mapping) -> str:
    return f"{face['emotion']} {face['confidence']:.2f}"


def draw_faces(image: Image.Image, faces: Sequence[Mapping]) -> Image.Image:
    """A copy of ``image`` (RGB) with every face's box and label drawn on it."""
    out = image.convert("RGB")  # always a copy
    draw = ImageDraw.Draw(out)
    line, font_size = sizes(out.width, out.height)
    font = ImageFont.load_default(size=font_size)
    pad = max(2, font_size // 5)
    for face in faces:
        x, y, w, h = face["bounding_box"]
        colour = _rgb(EMOTION_COLOURS.get(face["emotion"], "#FFFFFF"))
        # A dark rim around the coloured line keeps it visible on light and dark photos.
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=OUTLINE, width=line + 2)
        if w > 2 and h > 2:  # a box 1 or 2 pixels wide (detect=false on such an image) has no inside
            draw.rectangle((x + 1, y + 1, x + w - 2, y + h - 2), outline=colour, width=line)
        text = label_of(face)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
        lx = min(max(0, x), max(0, out.width - box_w))
        ly = y - box_h if y - box_h >= 0 else y  # above the box, or inside it at the top
        draw.rectangle((lx, ly, lx + box_w - 1, ly + box_h - 1), fill=colour, outline=OUTLINE)
        draw.text((lx + pad - left, ly + pad - top), text, font=font, fill=_text_colour(colour))
    return out


def annotate(rgb: np.ndarray, faces: Sequence[Mapping], fmt: str = "jpeg") -> bytes:
    """Encoded (JPEG or PNG) bytes of the upright RGB array with the faces drawn."""
    image = draw_faces(Image.fromarray(rgb), faces)
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
