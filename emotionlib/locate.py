"""Uploaded bytes -> face boxes in the full image's pixels + face crops for the classifier.

Detection needs only a ``params.max_side`` image, so a large JPEG is decoded at reduced
size (emotionlib.decode's draft mode): less time and memory per request. Boxes are mapped
back to the full upright image, as the API reports them. A crop cut from the reduced
image is as good as one from the full image while it still has at least ``crop_side``
pixels per side (the classifier's input only shrinks it further); when a face is smaller
than that in the reduced image and the full image has more of its pixels, the image is
decoded again at full size for the crops, so reduction never costs accuracy.
"""
from __future__ import annotations

import numpy as np

from emotionlib.decode import DEFAULT_MAX_PIXELS, Picture, decode_picture
from emotionlib.detect import Box, HaarParams, clip_box, detect_faces
from emotionlib.framing import crop_face


def to_full_image(box: Box, picture: Picture) -> Box:
    """A box in the pixels of ``picture.rgb`` -> the same box in the full upright image."""
    sx, sy = picture.scale_x, picture.scale_y
    mapped = clip_box(box.x * sx, box.y * sy, box.w * sx, box.h * sy, picture.width, picture.height)
    return mapped if mapped is not None else Box(0, 0, 1, 1)


def locate_faces(data: bytes, detect: bool = True, params: HaarParams = HaarParams(),
                 max_pixels: int = DEFAULT_MAX_PIXELS, crop_side: int = 48) -> tuple[list[Box], list[np.ndarray]]:
    """(boxes in full-image pixels, uint8 face crops) for an uploaded JPEG/PNG.

    ``detect=False``: the whole image is one face. Raises InputError like decode_picture.
    """
    picture = decode_picture(data, max_pixels, min_side=params.max_side if detect else crop_side)
    height, width = picture.rgb.shape[:2]
    found = detect_faces(picture.rgb, params) if detect else [Box(0, 0, width, height)]
    boxes = [to_full_image(box, picture) for box in found]
    detector = "haar" if detect else "none"
    if picture.reduced and any(min(box.w, box.h) < crop_side for box in found):
        picture, found = decode_picture(data, max_pixels), boxes
    return boxes, [crop_face(picture.rgb, box, detector) for box in found]
