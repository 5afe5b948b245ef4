"""The in-process pipeline (emotionlib.EmotionPipeline.from_model: the bundled Keras file,
converted once into a cache) answers exactly as POST /emotion of a real `bentoml serve` (the
model from the store, imported by import_model.py) for the same photo and fields."""
from __future__ import annotations

import json

import httpx
import pytest
from PIL import Image

from tests.helpers import encode


@pytest.fixture(scope="module")
def pipeline():
    from emotionlib import EmotionPipeline

    return EmotionPipeline.from_model()


def photos(obama, pair, face_crop):
    """(name, bytes, form fields) covering each path of a request through the pipeline."""
    big = obama.resize((obama.width * 3, obama.height * 3))  # decoded at reduced size for detection
    stored = obama.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8
    grid = Image.new("RGB", (10 * 120, 5 * 130), "white")
    for i in range(50):
        grid.paste(face_crop.resize((100, 100)), (10 + (i % 10) * 120, 10 + (i // 10) * 130))
    return [
        ("portrait.jpg", encode(obama), {}),
        ("pair.png", encode(pair, "PNG"), {}),
        ("pair.jpg", encode(pair, quality=90), {"min_detection_confidence": 0.87}),
        ("big.jpg", encode(big, quality=85), {}),
        ("rotated.jpg", encode(stored, exif=exif.tobytes()), {}),
        ("crop.jpg", encode(face_crop), {"detect": False}),
        ("boxes.png", encode(obama, "PNG"), {"boxes": [[0, 0, 120, 150], [300, 60, 380, 380]]}),
        ("grid.jpg", encode(grid), {}),
        ("sky.png", encode(Image.new("RGB", (300, 200), "skyblue"), "PNG"), {}),
    ]


def test_same_faces_in_process_and_over_http(served, pipeline, obama, pair, face_crop):
    counts = []
    for name, data, fields in photos(obama, pair, face_crop):
        form = {key: json.dumps(value) if key == "boxes" else str(value).lower() if isinstance(value, bool)
                else str(value) for key, value in fields.items()}
        response = httpx.post(f"{served.url}/emotion", files={"image": (name, data, "application/octet-stream")},
                              data=form, timeout=120)
        assert response.status_code == 200, (name, response.text)
        in_process = [face.to_dict() for face in pipeline.predict(data, **fields)]
        assert in_process == response.json(), name
        counts.append(len(in_process))
    assert counts[:6] == [1, 2, 1, 1, 1, 1] and counts[6] == 2 and counts[7] >= 45 and counts[8] == 0


def test_same_errors_in_process_and_over_http(served, pipeline, obama):
    """A bad photo or field: the pipeline's error code is the answer's code."""
    from emotionlib import InputError

    cases = [(b"just text", {}), (encode(obama)[:3000], {}), (encode(obama), {"boxes": [[900, 0, 20, 20]]}),
             (encode(obama), {"min_detection_confidence": 1.5})]
    for data, fields in cases:
        with pytest.raises(InputError) as raised:
            pipeline.predict(data, **fields)
        form = {key: json.dumps(value) for key, value in fields.items()}
        answer = httpx.post(f"{served.url}/emotion", files={"image": ("x.jpg", data, "image/jpeg")}, data=form,
                            timeout=60).json()
        assert (answer["code"], answer["error"]) == (raised.value.code, raised.value.message)
