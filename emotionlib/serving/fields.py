"""What goes in and out of the endpoints besides the photos: the form fields, made into what
the pipeline takes, and the JSON schema of the answer.

``boxes`` arrives as JSON text (or the list BentoML's form parser already decoded from it);
the pipeline checks the boxes themselves (emotionlib.geometry.check_boxes: shape, integers,
size, count, inside the image). ``min_detection_confidence`` goes to the pipeline as given
(text or number): it checks the range.
"""
from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from emotionlib.errors import InputError
from emotionlib.labels import EMOTIONS

EXAMPLE = "[[10, 20, 100, 120]]"


def parse_boxes(value):
    """The boxes field's value decoded from JSON text (None stays None: no boxes); text that is
    not JSON, or JSON Python cannot read (an integer of over 4,300 digits, lists nested thousands
    deep), is an InputError."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise InputError("invalid_boxes", "field 'boxes' is not valid JSON; send a list of [x, y, w, h] "
                             f"boxes, e.g. {EXAMPLE}") from None
    return value


# Checked by the pipeline (400s in the API's error shape), so typed Any for BentoML.
BoxesField = Annotated[Any, Field(description="JSON list of [x, y, w, h] boxes to classify instead of detecting "
                                              f"faces, e.g. {EXAMPLE}")]
ConfidenceField = Annotated[Any, Field(description="0 to 1: drop detected faces the detector scores lower "
                                                   "(default EMOTION_MIN_DETECTION_CONFIDENCE)")]

# The answer of /emotion: Face.to_dict() per face (the one serialisation); this schema only
# documents it in /docs.json (tests/serving/test_http.py checks answers against it).
FACE_SCHEMA = {
    "type": "object",
    "required": ["bounding_box", "emotion", "confidence", "scores", "detection_confidence"],
    "additionalProperties": False,
    "properties": {
        "bounding_box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                         "description": "[x, y, width, height] in pixels of the upright image"},
        "emotion": {"enum": list(EMOTIONS)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "probability of `emotion`"},
        "scores": {"type": "object", "required": list(EMOTIONS), "additionalProperties": False,
                   "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in EMOTIONS},
                   "description": "probability of each of the six emotions; sums to 1"},
        "detection_confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                 "description": "the face detector's score (null for given boxes and detect=false)"},
    },
}
FacesAnswer = Annotated[list[dict], WithJsonSchema({"type": "array", "items": FACE_SCHEMA})]
