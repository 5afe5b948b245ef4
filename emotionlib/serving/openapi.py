"""The OpenAPI document of the service (GET /docs.json): BentoML's, with every answer of every
endpoint in our shape.

BentoML documents its own 400/404/500 bodies (InvalidArgument, NotFound, InternalServerError),
which the service never sends (errors.ErrorShape rewrites them), and none of 401, 405, 408,
413, 415, 503 or 504; for the video task it documents a status schema with other values than
the ones it sends, and a 200 for the routes we refuse; a generated client could not know the
answers it gets. Here each operation's responses are: its 200 (the faces; the annotated image
in either of its formats or as JSON, with its headers; the batch's entries, faces or that
photo's error; a clip's answer, its annotated WebM; a submitted task, its status, its answer),
and one entry per error status it can answer, each with the ``Error`` schema narrowed to that
status and the codes (errors.STATUS and FOREIGN_CODES) an answer of it carries: a photo
endpoint the photos' codes (errors.PHOTO_STATUS), a clip endpoint the clips' (VIDEO_STATUS).
tests/serving/test_openapi.py checks real answers against the document.
"""
from __future__ import annotations

import copy
from http import HTTPStatus

from emotionlib.serving.errors import FOREIGN_CODES, PHOTO_STATUS, STATUS, VIDEO_STATUS
from emotionlib.serving.fields import COUNT_HEADER, FACE_SCHEMA, FACES_HEADER, MAX_HEADER_FACES, VIDEO_SCHEMA
from emotionlib.serving.video import REFUSED, TASK_ROUTE

PHOTO_ROUTES = ("/emotion", "/emotion/annotate", "/emotion/batch")
VIDEO_ROUTES = ("/emotion/video", "/emotion/video/annotate")
SUBMIT, STATUS_ROUTE, RESULT_ROUTE = f"{TASK_ROUTE}/submit", f"{TASK_ROUTE}/status", f"{TASK_ROUTE}/get"
# Every POST endpoint that takes an upload.
ROUTES = (*PHOTO_ROUTES, *VIDEO_ROUTES, SUBMIT)
# Every operation of the API, (method, path): the uploads, the task's queries, the refused routes.
OPERATIONS = (*(("post", route) for route in ROUTES), ("get", STATUS_ROUTE), ("get", RESULT_ROUTE),
              *((method.lower(), path) for method, path in REFUSED))
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
TASK_STATUS_SCHEMA = {
    "type": "object",
    "required": ["task_id", "status", "created_at", "executed_at"],
    "additionalProperties": False,
    "properties": {
        "task_id": {"type": "string"},
        "status": {"enum": ["in_progress", "completed", "failed"],
                   "description": "`failed`: GET .../get gives the clip's error"},
        "created_at": {"type": "string", "description": "ISO 8601"},
        "executed_at": {"type": ["string", "null"], "description": "ISO 8601, once it has ended"},
    },
}
SUBMITTED_SCHEMA = {
    "type": "object", "required": ["task_id", "status"], "additionalProperties": False,
    "properties": {"task_id": {"type": "string"}, "status": {"enum": ["in_progress"]}},
}
FACES = {"type": "array", "items": FACE_SCHEMA}
# Codes no request to an operation gets: /readyz's, a WebSocket handshake's, and BentoML's
# 404 (the path exists).
NOT_FROM_ENDPOINTS = {"not_ready", "forbidden", "not_found"}
ANY_REQUEST = {"unauthorized", "malformed_http"}
MODEL = {"model_busy", "model_timeout"}
# What every upload endpoint can answer: the form, the upload's limits, access, the model worker.
UPLOAD = set(STATUS) - set(PHOTO_STATUS) - set(VIDEO_STATUS) - NOT_FROM_ENDPOINTS - {"empty_file", "not_supported"}
CODES = {
    "/emotion": UPLOAD | set(PHOTO_STATUS) | {"empty_file"},
    "/emotion/annotate": UPLOAD | set(PHOTO_STATUS) | {"empty_file"},
    "/emotion/batch": UPLOAD,  # a batch's photos get their image errors as their own entries of a 200
    **{route: UPLOAD | set(VIDEO_STATUS) | {"empty_file"} for route in VIDEO_ROUTES},
    SUBMIT: UPLOAD - MODEL,  # the form is checked at once; the clip when the task runs
    STATUS_ROUTE: ANY_REQUEST,
    # a failed task's answer: its clip's error (a task waits for its turn and its memory)
    RESULT_ROUTE: ANY_REQUEST | set(VIDEO_STATUS) | MODEL | {"empty_file", "invalid_field"},
    **{path: ANY_REQUEST | {"not_supported"} for _, path in REFUSED},
}
# Answers other layers make to these operations (errors.FOREIGN_CODES): BentoML's own validation
# (400 bad_request, 422 invalid_field: the upload guard checks the form first, so they are not
# expected), a bug (500) and the 60 s request timeout (504); for the task's queries, BentoML's
# 400 (no task_id, or the task has not ended) and 404 (no such task). (Other methods than the
# operation's get the router's 405 method_not_allowed, in the same shape.)
FOREIGN = {**{route: {400, 422, 500, 504} for route in ROUTES}, STATUS_ROUTE: {400, 404, 500},
           RESULT_ROUTE: {400, 404, 500}}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying: 1"}},
}


def codes_by_status(route: str) -> dict[int, list[str]]:
    """Every error code a request to ``route`` (a path of OPERATIONS) can be answered with, by HTTP status."""
    codes: dict[int, set[str]] = {}
    for code in CODES[route]:
        codes.setdefault(STATUS[code], set()).add(code)
    for status in FOREIGN.get(route, ()):
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


def json_answer(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def success(route: str) -> dict | None:
    """The 200 of an operation (None: it has none)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    if route == "/emotion":
        return json_answer("every face, left to right; [] for none", FACES)
    if route == "/emotion/batch":
        entry = {"oneOf": [{"type": "object", "required": ["faces"], "additionalProperties": False,
                            "properties": {"faces": FACES}}, ERROR]}
        return json_answer("one entry per photo, in request order: its faces, or its own error",
                           {"type": "array", "items": entry})
    if route == "/emotion/annotate":
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
    if route in ("/emotion/video", RESULT_ROUTE):
        return json_answer("every analysed frame's faces with their track ids, and every person's track"
                           + (" (the task's answer, once it has completed)" if route == RESULT_ROUTE else ""),
                           VIDEO_SCHEMA)
    if route == "/emotion/video/annotate":
        return {"description": "the clip as WebM (VP8) at the analysed frame rate, each face boxed and labelled",
                "content": {"video/webm": binary}}
    if route == SUBMIT:
        return json_answer("the task is accepted: ask GET .../status and .../get with its task_id", SUBMITTED_SCHEMA)
    if route == STATUS_ROUTE:
        return json_answer("where the task is", {"$ref": "#/components/schemas/TaskStatusResponse"})
    return None  # a refused route


def document(spec: dict, description: str) -> dict:
    """BentoML's OpenAPI document (``service.openapi_spec.asdict()``) with our answers and
    ``description``; the input is not changed."""
    spec = copy.deepcopy(spec)
    spec["info"]["description"] = description
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for bentoml_own in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(bentoml_own, None)
    schemas["Error"] = ERROR_SCHEMA
    schemas["TaskStatusResponse"] = TASK_STATUS_SCHEMA  # BentoML's lists statuses it never sends
    for method, route in OPERATIONS:
        operation = spec["paths"][route][method]
        ok = success(route)
        operation["responses"] = {**({"200": ok} if ok else {}), **{
            str(status): error_response(status, codes) for status, codes in codes_by_status(route).items()}}
        if ok is None:
            operation["description"] = next(error.message for (m, path), error in REFUSED.items()
                                             if (m.lower(), path) == (method, route))
    return spec
