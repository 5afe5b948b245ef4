"""Haar face detection on real portraits: counts, order, bounds, coordinates."""
from __future__ import annotations

import numpy as np
from PIL import Image

from emotionlib.detectors.haar import HaarParams
from emotionlib.detectors.haar import detect_faces
from emotionlib.geometry import Box, clip_box, order_boxes, suppress_overlaps
from tests.helpers import side_by_side


def test_one_face_in_each_portrait(obama, biden):
    for image in (obama, biden):
        boxes = detect_faces(np.asarray(image))
        assert len(boxes) == 1
        box = boxes[0]
        assert 200 < box.w < 400 and abs(box.w - box.h) <= 2


def test_two_faces_left_to_right(pair, obama, biden):
    boxes = detect_faces(np.asarray(pair))
    assert len(boxes) == 2
    left, right = boxes
    obama_width = round(obama.width * 600 / obama.height)
    assert left.x + left.w <= obama_width < right.x


def test_boxes_lie_inside_the_image(pair):
    image = np.asarray(pair)
    for box in detect_faces(image):
        assert box.x >= 0 and box.y >= 0 and box.w > 0 and box.h > 0
        assert box.x + box.w <= image.shape[1] and box.y + box.h <= image.shape[0]
        assert all(isinstance(v, int) for v in box.as_list())


def test_large_image_boxes_are_in_original_coordinates(obama):
    small = detect_faces(np.asarray(obama))[0]
    big_image = obama.resize((obama.width * 3, obama.height * 3))  # 2730x3411: downscaled to detect
    big = detect_faces(np.asarray(big_image), HaarParams(max_side=1280))
    assert len(big) == 1
    assert abs(big[0].x - 3 * small.x) < 40 and abs(big[0].w - 3 * small.w) < 60


def test_no_face_in_a_blank_image():
    assert detect_faces(np.full((400, 400, 3), 200, np.uint8)) == []


def test_tiny_image_has_no_face():
    assert detect_faces(np.zeros((5, 5, 3), np.uint8)) == []


def test_grid_of_fifty_faces(face_crop):
    tile = face_crop.resize((100, 100))
    canvas = Image.new("RGB", (10 * 120, 5 * 130), "white")
    for i in range(50):
        canvas.paste(tile, (10 + (i % 10) * 120, 10 + (i // 10) * 130))
    boxes = detect_faces(np.asarray(canvas))
    assert len(boxes) >= 45
    assert boxes == order_boxes(boxes)


def test_order_is_left_to_right_then_top_to_bottom():
    boxes = [Box(50, 0, 10, 10), Box(0, 90, 10, 10), Box(0, 10, 10, 10)]
    assert order_boxes(boxes) == [Box(0, 10, 10, 10), Box(0, 90, 10, 10), Box(50, 0, 10, 10)]


def test_overlapping_leftovers_are_suppressed():
    face, collar, other = Box(100, 100, 300, 300), Box(150, 250, 200, 200), Box(500, 100, 300, 300)
    assert suppress_overlaps([collar, face, other]) == [face, other]


def test_clip_box():
    assert clip_box(-5.4, 2.6, 20, 20, 10, 10) == Box(0, 3, 10, 7)
    assert clip_box(20, 20, 5, 5, 10, 10) is None


def test_side_by_side_helper_keeps_both(obama, biden):
    assert side_by_side(obama, biden).height == 600


def test_frame_filling_face_is_found_by_the_large_face_fallback(obama):
    """A face filling 91% of the photo collects fewer than 6 neighbours (the cascade's window
    fits it at few positions): found with the fallback's 3, at a score under 0.5."""
    from emotionlib.detectors.haar import HaarDetector

    tight = np.asarray(obama.crop((372, 125, 612, 365)))
    assert HaarDetector(HaarParams(large_face_neighbors=6)).detect(tight) == []  # fallback off
    (face,) = HaarDetector(HaarParams()).detect(tight)
    assert face.box.w >= 0.5 * 240 and 0.4 <= face.score < 0.5


def test_large_face_fallback_changes_nothing_when_faces_reach_min_neighbors(pair):
    """One scan serves both rules: where faces reach min_neighbors, the answer is the
    plain scan's, box for box and score for score."""
    from emotionlib.detectors.haar import HaarDetector

    image = np.asarray(pair)
    plain = HaarDetector(HaarParams(large_face_neighbors=6)).detect(image)
    assert len(plain) == 2
    assert HaarDetector(HaarParams()).detect(image) == plain


def test_small_weak_boxes_are_not_taken_by_the_fallback(face_crop):
    """The fallback takes only boxes of at least half the shorter side: a small face on a
    large blank canvas that misses min_neighbors stays missed rather than be guessed."""
    from emotionlib.detectors.haar import HaarDetector

    canvas = Image.new("RGB", (1200, 1200), "white")
    canvas.paste(face_crop.resize((60, 60)), (570, 570))
    image = np.asarray(canvas)
    strict = HaarDetector(HaarParams(min_neighbors=49, large_face_neighbors=0)).detect(image)
    assert strict == []  # the 60 px face is under half of the 1200 px side
    assert HaarDetector(HaarParams(min_neighbors=0)).detect(image)  # while the scan does see it
