"""Crop framing: detector box (+ landmarks) -> the square crop the classifier sees."""
from __future__ import annotations

import numpy as np

from emotionlib.framing import IDENTITY, Framing, crop_face, crop_with, eye_angle
from emotionlib.geometry import Box


def ramp(height=100, width=120):
    y, x = np.mgrid[:height, :width]
    return (x + 1000 * y).astype(np.int64)  # every pixel tells where it came from


def test_identity_is_the_box_exactly():
    image = ramp()
    crop = crop_with(image, Box(10, 20, 30, 40), IDENTITY)
    np.testing.assert_array_equal(crop, image[20:60, 10:40])
    np.testing.assert_array_equal(crop_face(image, Box(10, 20, 30, 40), "none"), crop)


def test_scaled_and_shifted_square_crop():
    image = ramp()
    crop = crop_with(image, Box(40, 30, 20, 20), Framing(scale=1.5, dy=0.1))
    assert crop.shape == (30, 30)
    # centre (50, 40 + 2) -> top-left (35, 27)
    assert crop[0, 0] == 35 + 1000 * 27
    assert crop[-1, -1] == 64 + 1000 * 56


def test_outside_the_image_is_edge_replicated():
    image = ramp()
    crop = crop_with(image, Box(0, 0, 20, 20), Framing(scale=2.0))
    assert crop.shape == (40, 40)
    np.testing.assert_array_equal(crop[:10, :10], np.full((10, 10), image[0, 0]))
    np.testing.assert_array_equal(crop[10:, 10:], image[:30, :30])


def test_alignment_levels_the_eyes():
    image = np.zeros((200, 200), np.uint8)
    left, right = (70.0, 80.0), (130.0, 110.0)  # a face rolled by atan(30/60) = 26.6 degrees
    for x, y in (left, right):
        image[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] = 255
    assert abs(eye_angle((left, right)) - 26.565) < 0.01
    crop = crop_with(image, Box(50, 45, 100, 100), Framing(scale=1.2, align=True), landmarks=(left, right))
    ys, xs = np.nonzero(crop > 128)
    left_half, right_half = ys[xs < crop.shape[1] // 2], ys[xs >= crop.shape[1] // 2]
    assert abs(left_half.mean() - right_half.mean()) < 1.5
