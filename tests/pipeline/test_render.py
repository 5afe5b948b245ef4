"""emotionlib.render: boxes and labels drawn on the image, colours, output format."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from emotionlib.labels import EMOTIONS
from emotionlib.render import MAX_FONT, MAX_LINE, EMOTION_COLOURS, annotate, draw_faces, label_of, output_format, sizes
from tests.helpers import ROOT, encode


def face(box, emotion="happy", confidence=0.94):
    return {"bounding_box": box, "emotion": emotion, "confidence": confidence}


def changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    """Per-pixel: did any channel change?"""
    return np.any(np.asarray(before, np.int16) != np.asarray(after, np.int16), axis=2)


def test_box_edges_are_drawn_and_the_rest_is_untouched(obama):
    x, y, w, h = 342, 95, 300, 300
    after = draw_faces(obama, [face([x, y, w, h])])
    diff = changed(obama, after)
    assert after.size == obama.size
    for edge in (diff[y + h // 2, x], diff[y + h // 2, x + w - 1], diff[y, x + w // 2], diff[y + h - 1, x + w // 2]):
        assert edge
    assert not diff[y + h // 2, x + w // 2]  # inside the face
    assert not diff[obama.height - 5, 5]  # far away
    assert diff[y - 5, x + 5]  # the label above the box


def test_label_inside_the_box_at_the_top_edge_and_inside_the_image_at_the_right(obama):
    after = draw_faces(obama, [face([obama.width - 60, 0, 60, 60], "surprise")])
    diff = changed(obama, after)
    line, font = sizes(obama.width, obama.height)
    # No room above: the label sits inside the box's top; no room to the right: it is shifted left.
    assert diff[line + font // 2, obama.width - 30]
    assert diff[font // 2, obama.width - 150]


def test_each_emotion_has_its_own_colour(obama):
    assert set(EMOTION_COLOURS) == set(EMOTIONS)
    assert len(set(EMOTION_COLOURS.values())) == len(EMOTIONS)
    for emotion, colour in EMOTION_COLOURS.items():
        after = np.asarray(draw_faces(obama, [face([300, 300, 200, 200], emotion)]))
        expected = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert list(after[400, 301 + 1]) == expected  # the coloured line, inside the dark rim


def test_page_uses_the_same_colours():
    css = (ROOT / "emotionlib" / "serving" / "ui" / "ui.css").read_text()
    found = dict(re.findall(r"--(\w+):\s*(#[0-9A-Fa-f]{6})", css))
    assert {k: v.upper() for k, v in found.items()} == {k: v.upper() for k, v in EMOTION_COLOURS.items()}


@pytest.mark.parametrize("side", [64, 600, 6000])
def test_text_grows_with_the_image(side):
    line, font = sizes(side, side // 2)
    assert line >= 2 and font >= 12
    assert font >= side / 60  # about 1/45 of the longer side, so legible when scaled to a screen


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_output_format_follows_the_input(obama, fmt):
    data = encode(obama, fmt)
    out = annotate(np.asarray(obama), [face([342, 95, 300, 300])], output_format(data))
    image = Image.open(io.BytesIO(out))
    assert image.format == fmt and image.size == obama.size


def test_tiny_image_and_no_faces(obama):
    small = obama.resize((40, 50))
    assert np.array_equal(np.asarray(draw_faces(small, [])), np.asarray(small))
    drawn = draw_faces(small, [face([0, 0, 40, 50], "neutral", 0.5)])  # label wider than the image
    assert drawn.size == small.size


@pytest.mark.parametrize("size", [(1, 1), (1, 30), (30, 2), (2, 2), (3, 3)])
def test_boxes_one_or_two_pixels_wide(size):
    """detect=false on a 1- or 2-pixel-wide image gives a box that narrow: the inner coloured
    rectangle had its right edge left of its left one, and Pillow refused (a 500 that
    benchmarks/hostile_sweep.py found on /emotion/annotate)."""
    image = Image.new("RGB", size, "white")
    drawn = draw_faces(image, [face([0, 0, *size])])
    assert drawn.size == size and changed(image, drawn).any()


@pytest.mark.parametrize("width, height", [(1, 300_000), (300_000, 1), (3_000_000, 1), (1, 3_000_000), (50_000, 1_000)])
def test_any_shape_inside_the_limits_gets_bounded_labels(width, height):
    """Line and text sizes grow with the longer side up to a bound: a 1x300000 image asked for a
    6,667-pixel font (Pillow refused it as a decompression bomb: a 500 after seconds of CPU)
    and a 3000000x1 one for 66,667 (FreeType: invalid pixel size). Drawn and encoded whole."""
    line, font = sizes(width, height)
    assert (line, font) == (MAX_LINE, MAX_FONT)
    rgb = np.full((height, width, 3), 200, np.uint8)
    out = annotate(rgb, [face([0, 0, width, height]), face([0, 0, 1, 1], "sad")], "png", in_place=True)
    drawn = np.asarray(Image.open(io.BytesIO(out)))
    assert drawn.shape == (height, width, 3) and (drawn != 200).any()


def test_drawing_in_place_uses_the_callers_array_and_otherwise_copies(obama):
    rgb = np.array(obama)
    before = rgb.copy()
    annotate(rgb, [face([342, 95, 300, 300])], "png")
    assert np.array_equal(rgb, before)  # a copy was drawn on
    out = annotate(rgb, [face([342, 95, 300, 300])], "png", in_place=True)
    assert not np.array_equal(rgb, before)  # drawn into (and left in the encoder's channel order)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))),
                          np.asarray(draw_faces(obama, [face([342, 95, 300, 300])])))


def test_label_names_the_track_of_a_video_face():
    assert label_of(face([0, 0, 9, 9])) == "happy 0.94"
    assert label_of({**face([0, 0, 9, 9]), "track_id": 2}) == "#2 happy 0.94"
