"""The OpenAPI document of the service (GET /docs.json): BentoML's, with every answer of every
endpoint in our shape.

BentoML documents its own 400/404/500 bodies (InvalidArgument, NotFound, InternalServerError),
which the service never sends (errors.ErrorShape rewrites them), and none of 401, 405, 408,
413, 415, 503 or 504; a generated client could not know the answers it gets. Here each
endpoint's responses are: its 200 (the faces; the annotated image in either of its formats or
as JSON, with its headers; the batch's entries, faces or that photo's error), and one entry per
error status it can answer, each with the ``Error`` schema narrowed to that status and the
codes (errors.STATUS and FOREIGN_CODES) an answer of it carries. tests/serving/test_openapi.py
checks real answers against the document.
"""
from __future__ import annotations

import copy
from http import HTTPStatus

from emotionlib.serving.errors import FOREIGN_CODES, STATUS
from emotionlib.serving.fields import COUNT_HEADER, FACE_SCHEMA, FACES_HEADER, MAX_HEADER_FACES

ROUTES = ("/emotion", "/emotion/annotate", "/emotion/batch")
ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code", "status"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for a person"},
        "code": {"type": "string", "description": "what went wrong, for a program (stable)"},
        "status": {"type": "integer", "description": "the HTTP status of the answer"},
    },
    "description": "every answer of 400 and above, from every layer of the service",
}
FACES = {"type": "array", "items": FACE_SCHEMA}
IMAGE_CODES = {"empty_file", "not_an_image", "corrupt_image", "truncated_image", "too_many_scans", "image_too_large",
               "unsupported_image_type"}
# Codes no request to these endpoints gets: /readyz's, a WebSocket handshake's, and BentoML's
# 404 (the path exists).
NOT_FROM_ENDPOINTS = {"not_ready", "forbidden", "not_found"}
# Answers other layers make to these operations (errors.FOREIGN_CODES): BentoML's own validation
# (400 bad_request, 422 invalid_field: the upload guard checks the form first, so they are not
# expected), a bug (500) and the 60 s request timeout (504). (Other methods than POST get the
# router's 405 method_not_allowed, in the same shape.)
FOREIGN = {400, 422, 500, 504}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying: 1"}},
}


def codes_by_status(route: str) -> dict[int, list[str]]:
    """Every error code a request to ``route`` can be answered with, by HTTP status."""
    codes: dict[int, set[str]] = {}
    for code, status in STATUS.items():
        if code in NOT_FROM_ENDPOINTS or (route == "/emotion/batch" and (code in IMAGE_CODES or code == "invalid_boxes")):
            continue  # a batch's photos get their image errors as their own entries of a 200
        codes.setdefault(status, set()).add(code)
    for status in FOREIGN:
        if FOREIGN_CODES[status] not in NOT_FROM_ENDPOINTS:
            codes.setdefault(status, set()).add(FOREIGN_CODES[status])
    return {status: sorted(found) for status, found in sorted(codes.items())}


def error_response(status: int, codes: list[str]) -> dict:
    answer = {
        "description": f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{code}`" for code in codes),
        "content": {"application/json": {"schema": {"allOf": [ERROR, {
            "properties": {"code": {"enum": codes}, "status": {"enum": [status]}}}]}}},
    }
    if status in HEADERS:
        answer["headers"] = HEADERS[status]
    return answer


def success(route: str) -> dict:
    if route == "/emotion":
        return {"description": "every face, left to right; [] for none",
                "content": {"application/json": {"schema": FACES}}}
    if route == "/emotion/batch":
        entry = {"oneOf": [{"type": "object", "required": ["faces"], "additionalProperties": False,
                            "properties": {"faces": FACES}}, ERROR]}
        return {"description": "one entry per photo, in request order: its faces, or its own error",
                "content": {"application/json": {"schema": {"type": "array", "items": entry}}}}
    binary = {"schema": {"type": "string", "format": "binary"}}
    inline = {"type": "object", "required": ["faces", "media_type", "image"], "additionalProperties": False,
              "properties": {"faces": FACES, "media_type": {"enum": ["image/jpeg", "image/png"]},
                             "image": {"type": "string", "format": "byte", "description": "the image, base64"}}}
    return {
        "description": "the photo with its faces drawn: JPEG for a JPEG, PNG for a PNG; with "
                       "`Accept: application/json`, the faces and the image inline",
        "headers": {
            COUNT_HEADER: {"schema": {"type": "integer"}, "description": "how many faces"},
            FACES_HEADER: {"schema": {"type": "string"},
                           "description": f"the faces' JSON, as /emotion answers it; left out past "
                                          f"{MAX_HEADER_FACES} faces (it stays under 8 KB)"},
        },
        "content": {"image/jpeg": binary, "image/png": binary, "application/json": {"schema": inline}},
    }


def document(spec: dict, description: str) -> dict:
    """BentoML's OpenAPI document (``service.openapi_spec.asdict()``) with our answers and
    ``description``; the input is not changed."""
    spec = copy.deepcopy(spec)
    spec["info"]["description"] = description
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for bentoml_own in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(bentoml_own, None)
    schemas["Error"] = ERROR_SCHEMA
    for route in ROUTES:
        operation = spec["paths"][route]["post"]
        operation["responses"] = {"200": success(route), **{
            str(status): error_response(status, codes) for status, codes in codes_by_status(route).items()}}
    return spec
