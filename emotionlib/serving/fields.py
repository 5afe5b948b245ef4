"""What goes in and out of the endpoints besides the photos: the form fields, made into what
the pipeline takes, the JSON schema of the answer, and the annotated image's answer (its
headers, or JSON for clients that ask for it).

``boxes`` arrives as JSON text (or the list BentoML's form parser already decoded from it);
the pipeline checks the boxes themselves (emotionlib.geometry.check_boxes: shape, integers,
size, count, inside the image). ``min_detection_confidence`` goes to the pipeline as given
(text or number): it checks the range.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, WithJsonSchema

from emotionlib.errors import InputError
from emotionlib.labels import EMOTIONS

if TYPE_CHECKING:
    from emotionlib.serving.photos import Annotated as AnnotatedPhoto

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
FpsField = Annotated[Any, Field(description="frames analysed per second of video, 0.01 to 1000 (default 2; at most "
                                            "the clip's own rate: 1000 analyses every frame)")]

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

# The answer of /emotion/video (and of its task): VideoResult.to_dict(); documented here as
# FACE_SCHEMA is (tests/serving/test_video_http.py checks answers against it).
_EMOTION_NUMBERS = {"type": "object", "required": list(EMOTIONS), "additionalProperties": False,
                    "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in EMOTIONS}}
TRACKED_FACE_SCHEMA = {
    **FACE_SCHEMA, "required": [*FACE_SCHEMA["required"], "track_id"],
    "properties": {**FACE_SCHEMA["properties"], "track_id": {
        "type": "integer", "minimum": 1, "description": "the person: the same id from frame to frame"}},
}
VIDEO_SCHEMA = {
    "type": "object",
    "required": ["clip", "frames", "tracks"],
    "additionalProperties": False,
    "properties": {
        "clip": {"type": "object", "additionalProperties": False, "description": "the clip as read",
                 "required": ["duration", "fps", "width", "height", "frames_analysed", "analysed_fps", "frame_count",
                              "rotation", "container", "codec"],
                 "properties": {
                     "duration": {"type": ["number", "null"], "description": "seconds (decoded)"},
                     "fps": {"type": "number", "description": "the clip's own frame rate (average)"},
                     "width": {"type": "integer", "description": "upright frame width"},
                     "height": {"type": "integer", "description": "upright frame height"},
                     "frames_analysed": {"type": "integer"},
                     "analysed_fps": {"type": "number", "description": "frames analysed per second of video"},
                     "frame_count": {"type": ["integer", "null"], "description": "frames decoded"},
                     "rotation": {"type": "integer", "description": "degrees the frames were turned (phone clips)"},
                     "container": {"enum": ["mp4", "matroska", "avi"]},
                     "codec": {"type": "string"}}},
        "frames": {"type": "array", "description": "every analysed frame, in time order", "items": {
            "type": "object", "required": ["t", "faces"], "additionalProperties": False,
            "properties": {"t": {"type": "number", "minimum": 0, "description": "seconds into the clip"},
                           "faces": {"type": "array", "items": TRACKED_FACE_SCHEMA}}}},
        "tracks": {"type": "array", "description": "one per person", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["track_id", "first_t", "last_t", "frames_seen", "dominant_emotion", "mean_scores",
                         "frame_shares"],
            "properties": {
                "track_id": {"type": "integer", "minimum": 1},
                "first_t": {"type": "number"}, "last_t": {"type": "number"},
                "frames_seen": {"type": "integer", "minimum": 1},
                "dominant_emotion": {"enum": list(EMOTIONS), "description": "highest mean score"},
                "mean_scores": {**_EMOTION_NUMBERS, "description": "each emotion's mean score over the frames seen"},
                "frame_shares": {**_EMOTION_NUMBERS, "description": "share of frames in which each was the top one"}}}},
    },
}
VideoAnswer = Annotated[dict, WithJsonSchema(VIDEO_SCHEMA)]


# --- /emotion/annotate's answer -----------------------------------------------------------------
# The faces' JSON goes in the X-Emotion-Faces header for at most this many faces: 32 faces of
# the longest JSON a face can have stay under 8 KB, the header limit of aiohttp's client and of
# many proxies (at about 40 faces the header passed 8,190 bytes and such clients failed the whole
# answer). Past it the header is left out; X-Emotion-Face-Count always says how many there are,
# and `Accept: application/json` gets them all with the image inline.
MAX_HEADER_FACES = 32
FACES_HEADER, COUNT_HEADER = "X-Emotion-Faces", "X-Emotion-Face-Count"


def wants_json(context) -> bool:
    """Does the current request's Accept header (``context``: the service's BentoML context)
    prefer application/json (named, with a q above 0) to every image type it names? Without it
    (browsers send */*), or outside an HTTP request, the answer is the image."""
    try:
        accept = context.request.headers.get("accept", "")
    except LookupError:  # called in-process, not through HTTP
        return False
    json_q, image_q = 0.0, 0.0
    for item in accept.split(","):
        media, *params = [part.strip() for part in item.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(1.0, max(0.0, float(value)))
                except ValueError:
                    q = 0.0
                if q != q:  # NaN
                    q = 0.0
        media = media.lower()
        if media == "application/json":
            json_q = max(json_q, q)
        elif media.startswith("image/"):
            image_q = max(image_q, q)
    return json_q > 0 and json_q >= image_q


def annotated_response(answer: "AnnotatedPhoto"):
    """The HTTP answer of /emotion/annotate; its memory reservation is held while it lives."""
    from starlette.responses import Response

    headers = {COUNT_HEADER: str(len(answer.faces)), "Vary": "Accept"}
    if len(answer.faces) <= MAX_HEADER_FACES:
        headers[FACES_HEADER] = json.dumps(answer.faces, separators=(",", ":"))
    response = Response(answer.body, media_type=answer.media_type, headers=headers)
    answer.reservation.hold_until_gone(response)
    return response
