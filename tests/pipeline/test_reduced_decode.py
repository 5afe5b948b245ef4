"""Large JPEGs are decoded at reduced size for detection; boxes and crops stay those of the
full image (EmotionPipeline.locate on bytes)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from emotionlib.decode import decode_picture
from emotionlib.pipeline import EmotionPipeline
from tests.helpers import encode


def test_draft_decoding_reduces_and_reports_full_size(obama):
    big = obama.resize((obama.width * 3, obama.height * 3))
    picture = decode_picture(encode(big, quality=85), min_side=1280)
    assert picture.reduced and max(picture.rgb.shape[:2]) >= 1280
    assert (picture.width, picture.height) == big.size
    assert picture.scale_x == big.width / picture.rgb.shape[1]


def test_exif_rotation_with_reduction(obama):
    big = obama.resize((obama.width * 3, obama.height * 3)).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8
    picture = decode_picture(encode(big, exif=exif.tobytes()), min_side=1280)
    assert (picture.width, picture.height) == (big.height, big.width)  # upright: portrait again
    assert picture.rgb.shape[0] > picture.rgb.shape[1]


def test_boxes_and_crops_match_the_full_decode(obama):
    big = obama.resize((obama.width * 3, obama.height * 3))
    data = encode(big, quality=90)
    pipeline = EmotionPipeline()
    reduced = pipeline.locate(data)
    full = pipeline.locate(np.asarray(Image.open(__import__("io").BytesIO(data)).convert("RGB")))
    assert len(reduced.detections) == len(full.detections) == 1
    a, b = reduced.detections[0].box, full.detections[0].box
    assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.w - b.w), abs(a.h - b.h)) <= 0.02 * b.w
    assert np.abs(reduced.pixels.astype(int) - full.pixels.astype(int)).mean() < 6


def test_small_faces_are_cropped_from_the_full_image(face_crop):
    """A face under the classifier's input size in the reduced image: crops from a full decode."""
    canvas = Image.new("RGB", (5200, 5200), "white")
    canvas.paste(face_crop.resize((160, 160)), (2500, 2500))  # 40 px at the 1/4 draft scale
    data = encode(canvas, quality=90)
    located = EmotionPipeline().locate(data)
    assert len(located.detections) == 1
    box = located.detections[0].box
    assert abs(box.x - 2500) < 30 and abs(box.w - 160) < 40
    whole = EmotionPipeline().locate(data, detect=False)  # the whole image as one face
    assert whole.detections[0].box.as_list() == [0, 0, 5200, 5200]
