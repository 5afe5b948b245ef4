"""Form fields the API checks itself (the upload guard only checks they are text).

``boxes``: face regions a client gives instead of detection, a JSON list of
``[x, y, w, h]`` integer boxes in pixels of the upright image. Every problem is a 400
``invalid_boxes`` that names the box (``boxes[2]``) and what is wrong.

``min_detection_confidence``: a number from 0 to 1 (400 ``invalid_field`` otherwise).
"""
from __future__ import annotations

import json

from emotionlib.geometry import Box
from emotionlib.errors import InputError

EXAMPLE = "[[10, 20, 100, 120]]"


def _invalid(message: str) -> InputError:
    return InputError("invalid_boxes", message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_boxes(value, max_boxes: int) -> list[Box]:
    """Boxes from the field's value: JSON text, or the list BentoML's form parser already
    decoded from it. Checks the shape, ints, positive size and count (not the image bounds:
    see ``check_inside``)."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise _invalid(f"field 'boxes' is not valid JSON; send a list of [x, y, w, h] boxes, "
                           f"e.g. {EXAMPLE}") from None
    if not isinstance(value, list):
        raise _invalid(f"field 'boxes' must be a JSON list of [x, y, w, h] boxes, e.g. {EXAMPLE}; "
                       f"got {type(value).__name__}")
    if len(value) > max_boxes:
        raise _invalid(f"too many boxes: {len(value)}; at most {max_boxes} per image")
    boxes = []
    for index, item in enumerate(value):
        shown = json.dumps(item)[:60]
        if not (isinstance(item, list) and len(item) == 4 and all(_is_int(v) for v in item)):
            raise _invalid(f"boxes[{index}] = {shown} is not a list of four integers [x, y, w, h]")
        x, y, w, h = item
        if w <= 0 or h <= 0:
            raise _invalid(f"boxes[{index}] = {shown} has zero area: width and height must be positive")
        boxes.append(Box(x, y, w, h))
    return boxes


def check_inside(boxes: list[Box], width: int, height: int) -> None:
    """Raise a 400 naming the first box that is not wholly inside a width x height image."""
    for index, box in enumerate(boxes):
        if box.x < 0 or box.y < 0 or box.x + box.w > width or box.y + box.h > height:
            raise _invalid(f"boxes[{index}] = {box.as_list()} is outside the {width}x{height} image "
                           f"(x + w must be <= {width}, y + h <= {height}, x and y >= 0)")


def parse_confidence(value, name: str = "min_detection_confidence") -> float:
    """A number from 0 to 1, given as text or already decoded by BentoML's form parser."""
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 0.0 <= number <= 1.0:
        raise InputError("invalid_field", f"field {name!r} must be a number from 0 to 1, "
                         f"got {str(value)[:40]!r}")
    return number
