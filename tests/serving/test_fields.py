"""The boxes and min_detection_confidence fields: parsing (the HTTP layer), checking (the
pipeline) and the 400s that name the problem."""
from __future__ import annotations

import pytest

from emotionlib.errors import InputError
from emotionlib.geometry import Box, check_boxes, check_inside
from emotionlib.pipeline import confidence_threshold
from emotionlib.serving.errors import status_of
from emotionlib.serving.fields import parse_boxes as decode_boxes


def test_text_and_decoded_lists_give_the_same_boxes():
    assert parse_boxes("[[1, 2, 3, 4], [0, 0, 10, 20]]", 10) == [Box(1, 2, 3, 4), Box(0, 0, 10, 20)]
    assert parse_boxes([[1, 2, 3, 4]], 10) == [Box(1, 2, 3, 4)]
    assert parse_boxes("[]", 10) == []


BAD = [
    ("not json", "[[1, 2", "not valid JSON"),
    ("an object", '{"x": 1}', "must be a JSON list"),
    ("a flat box", "[1, 2, 3, 4]", "boxes[0] = 1 is not a list of four integers"),
    ("three numbers", "[[0, 0, 5, 5], [1, 2, 3]]", "boxes[1] = [1, 2, 3] is not a list of four integers"),
    ("a float", "[[1.5, 2, 3, 4]]", "boxes[0] = [1.5, 2, 3, 4] is not a list of four integers"),
    ("a boolean", "[[true, 2, 3, 4]]", "boxes[0]"),
    ("a string", '[["1", 2, 3, 4]]', "boxes[0]"),
    ("zero width", "[[0, 0, 5, 5], [0, 0, 5, 5], [1, 2, 0, 4]]", "boxes[2] = [1, 2, 0, 4] has zero area"),
    ("negative height", "[[1, 2, 3, -4]]", "boxes[0] = [1, 2, 3, -4] has zero area"),
    ("too many", str([[0, 0, 1, 1]] * 11), "too many boxes: 11; at most 10"),
]


@pytest.mark.parametrize("name, text, message", BAD, ids=[b[0] for b in BAD])
def test_bad_boxes_are_named(name, text, message):
    with pytest.raises(InputError) as info:
        parse_boxes(text, 10)
    assert status_of(info.value) == 400 and info.value.code == "invalid_boxes"
    assert message in info.value.message


@pytest.mark.parametrize("box, index", [([-1, 0, 5, 5], 1), ([0, -1, 5, 5], 1), ([96, 0, 5, 5], 1), ([0, 46, 5, 5], 1)])
def test_boxes_outside_the_image(box, index):
    with pytest.raises(InputError) as info:
        check_inside([Box(0, 0, 100, 50), Box(*box)], 100, 50)
    assert f"boxes[{index}]" in info.value.message and "outside the 100x50 image" in info.value.message


def test_boxes_touching_the_edges_are_inside():
    check_inside([Box(0, 0, 100, 50), Box(99, 49, 1, 1)], 100, 50)


@pytest.mark.parametrize("value, expected", [("0.5", 0.5), (0.25, 0.25), (1, 1.0), ("0", 0.0)])
def test_confidence_values(value, expected):
    assert confidence_threshold(value) == expected


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high", True, None, "nan", "inf", "-Infinity", "1e999",
                                   float("nan"), float("inf"), 10 ** 310, -(10 ** 4000), 10 ** 5000, [0.5], {"a": 1}],
                         ids=lambda value: f"{type(value).__name__}-{len(repr(value)) if not isinstance(value, int) else value.bit_length()}")
def test_bad_confidence_values(value):
    """NaN, the infinities and integers too large for a float (OverflowError, the 500 of the
    hostile run: 310 digits) are refused like any other bad value."""
    with pytest.raises(InputError) as info:
        confidence_threshold(value)
    assert info.value.code == "invalid_field" and "min_detection_confidence" in info.value.message


@pytest.mark.parametrize("value", [[[0, 0, 10 ** 400, 1]], [[10 ** 5000, 0, 1, 1]], [[0, 0, float("inf"), 1]],
                                   [[0, 0, float("nan"), 1]], [[[[[[1]]]]]], "[" * 30_000 + "]" * 30_000,
                                   "[[0, 0, " + "9" * 5000 + ", 1]]", "[[0, 0, 1e999, 1]]", "[[0, 0, NaN, 1]]"],
                         ids=lambda value: f"boxes-{value[:14] if isinstance(value, str) else type(value).__name__}")
def test_boxes_with_numbers_of_any_size_are_refused_by_name(value):
    with pytest.raises(InputError) as info:
        check_inside(parse_boxes(value, 10), 100, 50)
    assert info.value.code == "invalid_boxes" and len(info.value.message) < 300


def parse_boxes(text, max_boxes):
    """The field as the service reads it: JSON-decoded (serving), then checked (the pipeline)."""
    return check_boxes(decode_boxes(text), max_boxes)
