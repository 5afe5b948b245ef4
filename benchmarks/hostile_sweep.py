"""A hostile sweep of the live service: thousands of seeded bad inputs, every answer checked.

    python benchmarks/hostile_sweep.py                          # starts `bentoml serve` on a free port
    python benchmarks/hostile_sweep.py --url http://127.0.0.1:9000 --cases 3000 --concurrency 8

Kinds of input, each counted apart: bit flips, truncations and mixed byte mutations of real
JPEG and PNG bytes; broken EXIF blocks (orientation 2-8 and wrongly typed tags); every image
mode JPEG and PNG carry; decompression bombs; empty files; things that are not images;
malformed multipart bodies; wrong content types (upper-case MULTIPART/FORM-DATA must be 200);
bad form fields (every numeric and JSON field on every endpoint with overflow, huge integers,
NaN, infinities and over-long text: tests/fuzzing.HOSTILE_FIELDS); extreme shapes inside the
pixel limit (1x300000, 3000000x1, 7071x7071 ...) on every endpoint, with and without
detect=false and boxes; the annotated image's answers (Accept: application/json, more faces
than the X-Emotion-Faces header carries); wrong methods; unknown paths; malformed HTTP
written to the socket.

Every answer is checked: no 5xx, no request unanswered within --timeout (a hang), every 4xx
a JSON body {"error", "code", "status"} (README's error table), every 200 of /emotion and
/emotion/batch a JSON list (/emotion/annotate: an image and the faces' JSON list in
X-Emotion-Faces, under 8 KB, for at most 32 faces, X-Emotion-Face-Count always; with
Accept: application/json the faces and the image inline), and the cases whose status is
certain (e.g. 405 for GET /emotion) got it.
On a raw socket a closed connection is acceptable too; a request whose head never ends is
held open by uvicorn until the client leaves (--raw-wait), reported apart. Prints requests/s,
answers per kind and status, the failures with examples, the server's memory and /metrics
line count before and after. Seeded, bounded, loopback only. Exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # a script: the server helpers and generators live in tests/

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from tests import fuzzing  # noqa: E402
from tests.server import cpu_model, server_rss, service  # noqa: E402

FIXTURES = HERE.parent / "tests" / "fixtures"
ERROR_KEYS = {"error", "code", "status"}
FACE_KEYS = {"bounding_box", "emotion", "confidence", "scores", "detection_confidence"}
IMAGE_ROUTES = ("/emotion", "/emotion/annotate", "/emotion/batch")

# Share of the cases per kind (the order is the order of the table).
KINDS = {
    "bit-flips": 0.10, "truncations": 0.10, "mutations": 0.11, "exif": 0.10, "modes": 0.11,
    "bombs": 0.04, "empty": 0.01, "non-images": 0.05, "multipart": 0.10, "content-types": 0.04,
    "fields": 0.08, "shapes": 0.02, "answers": 0.03, "methods": 0.03, "paths": 0.03, "raw-http": 0.05,
}


@dataclass
class Case:
    kind: str
    name: str
    method: str = "POST"
    path: str = "/emotion"
    headers: list = field(default_factory=list)
    body: bytes = b""
    raw: bytes | None = None  # written to a socket as it is, instead of an HTTP client's request
    expect: int | None = None  # the status it must get, where that is certain


@dataclass
class Outcome:
    case: Case
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    failure: str = ""  # "hang", "closed: ...", "held open"
    seconds: float = 0.0


# ---------- requests ----------

def multipart(parts, boundary: str) -> bytes:
    """parts: (name, filename or None, data[, extra header lines])."""
    out = b""
    for name, filename, data, *extra in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        for line in (extra[0] if extra else ()):
            head += line + b"\r\n"
        out += head + b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def form_case(kind: str, name: str, parts, path: str = "/emotion", boundary: str | None = None,
              content_type: str | None = None, expect: int | None = None) -> Case:
    boundary = boundary or "sweep7MA4YWxkTrZu0gW"
    ctype = content_type or f"multipart/form-data; boundary={boundary}"
    return Case(kind, name, "POST", path, [("content-type", ctype)], multipart(parts, boundary), expect=expect)


def image_case(kind: str, name: str, data: bytes, rng: random.Random, good: bytes) -> Case:
    """The image sent to one of the three image routes, sometimes with detect=false; in a
    batch, beside a good photo."""
    route = rng.choices(IMAGE_ROUTES, (0.7, 0.15, 0.15))[0]
    filename = rng.choice(("photo.jpg", "image.png", "x", "", "../../etc/passwd", "ü.jpeg"))
    part_type = [rng.choice((b"Content-Type: image/jpeg", b"Content-Type: image/png",
                             b"Content-Type: application/octet-stream"))]
    if route == "/emotion/batch":
        parts = [("images", filename, data, part_type)] + [("images", "good.jpg", good)] * rng.randrange(0, 3)
        rng.shuffle(parts)
    else:
        parts = [("image", filename, data, part_type)]
    if rng.random() < 0.1:
        parts.append(("detect", None, b"false"))
    return form_case(kind, name, parts, route)


def raw_request(method: str, path: str, headers: list[str], body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    head = f"{method} {path} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


# ---------- cases per kind ----------

class Inputs:
    """Everything the cases are made from, built once from the fixtures."""

    def __init__(self, rng: random.Random):
        self.obama = Image.open(FIXTURES / "obama.jpg").convert("RGB")
        biden = Image.open(FIXTURES / "biden.jpg").convert("RGB")
        self.good = fuzzing.encode(self.obama.resize((228, 284)), "JPEG", quality=85)  # one face, fast
        medium = [fuzzing.encode(p.resize((p.width // 3, p.height // 3)), fmt)
                  for p in (self.obama, biden) for fmt in ("JPEG", "PNG")]
        self.seeds = (fuzzing.small_seeds(self.obama) + fuzzing.small_seeds(biden) + medium
                      + [(FIXTURES / "obama.jpg").read_bytes(), (FIXTURES / "biden.jpg").read_bytes()])
        self.weights = [1.0] * (len(self.seeds) - 2) + [0.25, 0.25]  # the full-size photos cost more
        self.modes = [named for _ in range(12) for named in fuzzing.mode_images(self.obama, rng)]
        self.bombs = fuzzing.bombs()
        self.non_images = fuzzing.non_images(rng, self.obama)

    def seed(self, rng: random.Random) -> bytes:
        return rng.choices(self.seeds, self.weights)[0]


def damaged(kind: str, inputs: Inputs, rng: random.Random) -> Case:
    damage = {"bit-flips": fuzzing.bit_flips, "truncations": fuzzing.truncate, "mutations": fuzzing.mutate}[kind]
    seed = inputs.seed(rng)
    data = damage(seed, rng)
    fmt = "jpeg" if seed.startswith(b"\xff\xd8") else "png"
    return image_case(kind, f"{fmt} {len(seed)} -> {len(data)} bytes", data, rng, inputs.good)


def exif_case(inputs: Inputs, rng: random.Random) -> Case:
    data = fuzzing.with_exif(inputs.seed(rng), fuzzing.random_exif(rng), rng)
    name = "jpeg" if data.startswith(b"\xff\xd8") else "png"
    if rng.random() < 0.3:
        data, name = fuzzing.mutate(data, rng), name + " mutated"
    return image_case("exif", f"{name} with a broken EXIF block", data, rng, inputs.good)


def mode_case(inputs: Inputs, rng: random.Random) -> Case:
    name, data = rng.choice(inputs.modes)
    case = image_case("modes", name, data, rng, inputs.good)
    case.expect = 200  # every mode is a valid image
    return case


def bomb_case(inputs: Inputs, rng: random.Random) -> Case:
    name, data = rng.choice(inputs.bombs)
    return image_case("bombs", name, data, rng, inputs.good)


def empty_case(inputs: Inputs, rng: random.Random) -> Case:
    route = rng.choice(IMAGE_ROUTES)
    field_name = "images" if route == "/emotion/batch" else "image"
    parts = [(field_name, rng.choice(("empty.jpg", "")), b"")]
    # a batch answers 200 with the empty photo's own error entry
    return form_case("empty", f"empty file to {route}", parts, route, expect=200 if field_name == "images" else 400)


def non_image_case(inputs: Inputs, rng: random.Random) -> Case:
    name, data = rng.choice(inputs.non_images)
    return image_case("non-images", name, data, rng, inputs.good)


def multipart_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    """(malformed) multipart bodies; the valid ones among them must be 200."""
    img, b = inputs.good, "XyZ" + str(rng.randrange(10**6))
    ctype = f"multipart/form-data; boundary={b}"
    valid = multipart([("image", "a.jpg", img)], b)

    def case(name, body, content_type=ctype, path="/emotion", expect=None):
        return Case("multipart", name, "POST", path, [("content-type", content_type)], body, expect=expect)

    def form(name, parts, path="/emotion", expect=None):
        return case(name, multipart(parts, b), path=path, expect=expect)

    return [
        case("valid (control)", valid, expect=200),
        form("valid batch (control)", [("images", "a.jpg", img), ("images", "b.jpg", img)], "/emotion/batch", 200),
        case("boundary in the body differs", multipart([("image", "a.jpg", img)], "other"), expect=400),
        case("no closing boundary", valid[:-len(f"--{b}--\r\n")]),
        case("closing boundary without CRLF", valid[:-2]),
        case("body ends inside a part header", valid[:60]),
        case("empty body", b"", expect=400),
        case("only the closing boundary", f"--{b}--\r\n".encode(), expect=400),
        form("no file field, text only", [("detect", None, b"true")], expect=400),
        form("wrong field name", [("picture", "a.jpg", img)], expect=400),
        form("field name in upper case", [("IMAGE", "a.jpg", img)], expect=400),
        form("'images' on /emotion", [("images", "a.jpg", img)], expect=400),
        form("'image' on /emotion/batch", [("image", "a.jpg", img)], "/emotion/batch", 400),
        form("two files", [("image", "a.jpg", img), ("image", "b.jpg", img)], expect=400),
        form("17 files in a batch", [("images", f"{i}.jpg", img) for i in range(17)], "/emotion/batch", 400),
        form("image as a text field", [("image", None, img)], expect=400),
        form("unknown extra field", [("image", "a.jpg", img), ("colour", None, b"red")], expect=400),
        form("detect twice", [("image", "a.jpg", img), ("detect", None, b"1"), ("detect", None, b"0")], expect=400),
        form("100 text fields", [("image", "a.jpg", img)] + [(f"f{i}", None, b"x") for i in range(100)], expect=400),
        form("text field of 1 MiB", [("image", "a.jpg", img), ("boxes", None, b"[" * (1 << 20))], expect=400),
        form("file name of 200 KB", [("image", "x" * 200_000 + ".jpg", img)]),
        form("500 part header lines", [("image", "a.jpg", img, [b"X-Pad-%d: y" % i for i in range(500)])]),
        form("part header line of 100 KB", [("image", "a.jpg", img, [b"X-Big: " + b"y" * 100_000])]),
        form("part header without a colon", [("image", "a.jpg", img, [b"this is not a header"])]),
        form("part Content-Type text/html (ignored)", [("image", "a.jpg", img, [b"Content-Type: text/html"])],
             expect=200),
        form("base64 Content-Transfer-Encoding",
             [("image", "a.jpg", base64.b64encode(img), [b"Content-Transfer-Encoding: base64"])]),
        form("file name with NUL and ../", [("image", "../\x00/etc/passwd", img)], expect=200),
        case("non-UTF-8 field name", f"--{b}\r\nContent-Disposition: form-data; name=\"im\xffage\"; "
             f'filename="a.jpg"\r\n\r\n'.encode("latin-1") + img + f"\r\n--{b}--\r\n".encode()),
        case("no Content-Disposition", f"--{b}\r\nContent-Type: image/jpeg\r\n\r\n".encode() + img
             + f"\r\n--{b}--\r\n".encode(), expect=400),
        case("Content-Disposition: attachment", f'--{b}\r\nContent-Disposition: attachment; name="image"; '
             f'filename="a.jpg"\r\n\r\n'.encode() + img + f"\r\n--{b}--\r\n".encode()),
        case("unquoted name and filename", f"--{b}\r\nContent-Disposition: form-data; name=image; "
             f"filename=a.jpg\r\n\r\n".encode() + img + f"\r\n--{b}--\r\n".encode()),
        case("LF line endings", valid.replace(b"\r\n", b"\n")),
        case("preamble and epilogue (RFC 2046 allows them)", b"preamble text\r\n" + valid + b"epilogue"),
        case("nested multipart/mixed", f'--{b}\r\nContent-Disposition: form-data; name="image"\r\n'
             f"Content-Type: multipart/mixed; boundary=inner\r\n\r\n".encode()
             + multipart([("image", "a.jpg", img)], "inner") + f"\r\n--{b}--\r\n".encode()),
        case("quoted boundary (legal)", valid, content_type=f'multipart/form-data; boundary="{b}"', expect=200),
        case("boundary of 70 characters (legal)", multipart([("image", "a.jpg", img)], "b" * 70),
             content_type="multipart/form-data; boundary=" + "b" * 70, expect=200),
        case("boundary of 2000 characters", multipart([("image", "a.jpg", img)], "b" * 2000),
             content_type="multipart/form-data; boundary=" + "b" * 2000),
        case("empty boundary", multipart([("image", "a.jpg", img)], ""), content_type="multipart/form-data; boundary="),
        case("no boundary parameter", valid, content_type="multipart/form-data", expect=400),
        case("garbage after a valid start", valid[:200] + bytes(rng.randrange(256) for _ in range(300))),
        case("mutated body", fuzzing.mutate(valid, rng)),
        case("mutated body", fuzzing.mutate(valid, rng)),
        case("mutated part header", fuzzing.mutate(valid[:120], rng) + valid[120:]),
        case("mutated part header", fuzzing.bit_flips(valid[:120], rng) + valid[120:]),
    ]


def content_type_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    img, b = inputs.good, "CtB" + str(rng.randrange(10**6))
    body = multipart([("image", "a.jpg", img)], b)

    def case(name, headers, content=body, expect=None):
        return Case("content-types", name, "POST", "/emotion", headers, content, expect=expect)

    return [
        case("application/json", [("content-type", "application/json")], b'{"image": "x"}', 415),
        case("text/plain", [("content-type", "text/plain")], b"image", 415),
        case("urlencoded", [("content-type", "application/x-www-form-urlencoded")], b"image=abc&detect=1", 415),
        case("octet-stream photo", [("content-type", "application/octet-stream")], img, 415),
        case("image/jpeg photo", [("content-type", "image/jpeg")], img, 415),
        case("no Content-Type", [], body, 415),
        case("multipart/mixed", [("content-type", f"multipart/mixed; boundary={b}")], body, 415),
        case("MULTIPART/FORM-DATA (upper case)", [("content-type", f"MULTIPART/FORM-DATA; boundary={b}")],
             expect=200),
        case("Multipart/Form-Data", [("content-type", f"Multipart/Form-Data; boundary={b}")], expect=200),
        case("upper-case BOUNDARY parameter", [("content-type", f"multipart/form-data; BOUNDARY={b}")]),
        case("space before ';'", [("content-type", f"multipart/form-data ; boundary={b}")]),
        case("charset parameter", [("content-type", f"multipart/form-data; charset=utf-8; boundary={b}")]),
        case("Content-Type of 8 KB", [("content-type", f"multipart/form-data; boundary={b}; x=" + "y" * 8000)]),
        case("Content-Type ';;;'", [("content-type", ";;;")], expect=415),
        case("Content-Type with latin-1 bytes", [("content-type", b"multipart/form-data; boundary=\xe9\xff")]),
        case("two Content-Type headers", [("content-type", "application/json"),
                                          ("content-type", f"multipart/form-data; boundary={b}")]),
        case("multipart Content-Type, JSON body", [("content-type", f"multipart/form-data; boundary={b}")],
             b'{"image": "x"}', 400),
    ]


def field_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    img = inputs.good

    def case(name, value, field_name="boxes", expect=None, path="/emotion"):
        photo = "images" if path == "/emotion/batch" else "image"
        return form_case("fields", name, [(photo, "a.jpg", img), (field_name, None, value)], path, expect=expect)

    return [
        case("detect=maybe", b"maybe", "detect", 400),
        case("detect empty", b"", "detect", 400),
        case("detect=TRUE", b"TRUE", "detect", 200),
        case("detect of 10 KB", b"1" * 10_000, "detect", 400),
        case("boxes not JSON", b"[[1, 2", expect=400),
        case("boxes three numbers", b"[[1, 2, 3]]", expect=400),
        case("boxes zero area", b"[[0, 0, 0, 10]]", expect=400),
        case("boxes negative", b"[[-1, 0, 10, 10]]", expect=400),
        case("boxes outside", b"[[0, 0, 100000, 10]]", expect=400),
        case("boxes 1e309", b"[[0, 0, 1e309, 1]]", expect=400),
        case("boxes huge integer", b"[[0, 0, " + b"9" * 5000 + b", 1]]", expect=400),
        case("boxes float", b"[[0.5, 0, 10, 10]]", expect=400),
        case("boxes inside (legal)", b"[[0, 0, 50, 60], [10, 10, 100, 100]]", expect=200),
        case("boxes empty list", b"[]"),
        case("boxes object", b'{"x": 1}', expect=400),
        case("boxes 1000 boxes", b"[" + b",".join([b"[0, 0, 10, 10]"] * 1000) + b"]", expect=400),
        case("boxes nested 30000 deep", b"[" * 30_000 + b"]" * 30_000, expect=400),
        case("boxes unclosed 60000 deep", b"[" * 60_000, expect=400),
        case("boxes null (read as no boxes)", b"null"),
        case("boxes NaN", b"[[NaN, 0, 10, 10]]", expect=400),
        case("boxes invalid UTF-8", b"\xff\xfe[[0,0,1,1]]", expect=400),
        case("min_detection_confidence=NaN", b"NaN", "min_detection_confidence", 400),
        case("min_detection_confidence=inf", b"inf", "min_detection_confidence", 400),
        case("min_detection_confidence=-1", b"-1", "min_detection_confidence", 400),
        case("min_detection_confidence=abc", b"abc", "min_detection_confidence", 400),
        case("min_detection_confidence empty", b"", "min_detection_confidence", 400),
        case("min_detection_confidence=0.9 (legal)", b"0.9", "min_detection_confidence", 200),
        case("batch min_detection_confidence=2", b"2", "min_detection_confidence", 400, "/emotion/batch"),
        case("batch boxes (unknown there)", b"[[0, 0, 10, 10]]", "boxes", 400, "/emotion/batch"),
    ] + [case(f"{field_name}={value[:16]}... ({len(value):,} chars) on {path}", value.encode(), field_name, 400, path)
         for field_name, values in fuzzing.HOSTILE_FIELDS.items() for value in values for path in IMAGE_ROUTES
         if not (field_name == "boxes" and path == "/emotion/batch")]


# Extreme shapes inside the 50 M pixel limit (issue 16: 500s from /emotion/annotate after up to
# 8.8 s of CPU), as grayscale or RGBA PNGs of zeros, with each way of choosing the faces.
SHAPES = [(1, 300_000), (300_000, 1), (3_000_000, 1), (1, 3_000_000), (50_000, 1_000), (7071, 7071)]


def shape_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    out = []
    for width, height in SHAPES:
        data = fuzzing.png_image(width, height, rng.choice((0, 6)))
        for path in IMAGE_ROUTES:
            field_name = "images" if path == "/emotion/batch" else "image"
            choices = [[], [("detect", None, b"false")]]
            if path != "/emotion/batch":
                choices.append([("boxes", None, json.dumps([[0, 0, width, height]]).encode())])
            for extra in choices:
                how = extra[0][0] + "=" + extra[0][2].decode()[:20] if extra else "detection"
                out.append(form_case("shapes", f"{width}x{height} PNG to {path}, {how}",
                                     [(field_name, "strip.png", data)] + extra, path, expect=200))
    return out


def answer_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    """The annotated image's answers: as JSON on request, and with more faces than its header carries."""
    canvas = fuzzing.encode(Image.new("RGB", (2400, 1200), "white"), "JPEG")
    out = []
    for count in (1, 32, 33, 40, 100):
        boxes = [[12 + 23 * i, 10 + 11 * (i % 9), 20, 20] for i in range(count)]
        parts = [("image", "c.jpg", canvas), ("boxes", None, json.dumps(boxes).encode())]
        for accept in ("image/*", "application/json", "application/json, */*;q=0.1", "*/*"):
            case = form_case("answers", f"{count} boxes, Accept: {accept}", parts, "/emotion/annotate", expect=200)
            case.headers.append(("accept", accept))
            out.append(case)
    photo = form_case("answers", "portrait as JSON", [("image", "o.jpg", inputs.good)], "/emotion/annotate",
                      expect=200)
    photo.headers.append(("accept", "application/json"))
    return out + [photo]


def method_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    body = multipart([("image", "a.jpg", inputs.good)], "mB")
    out = []
    for path in IMAGE_ROUTES:
        for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO"):
            headers = [("content-type", "multipart/form-data; boundary=mB")] if method in ("PUT", "PATCH") else []
            out.append(Case("methods", f"{method} {path}", method, path, headers,
                            body if headers else b"", expect=405 if method != "FOO" else None))
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        out.append(Case("methods", f"POST {path}", "POST", path, [], b"x", expect=405))
    out.append(Case("methods", "DELETE /ui/", "DELETE", "/ui/", [], b"", expect=405))
    return out


def path_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    token = "%032x" % rng.getrandbits(128)
    body = multipart([("image", "a.jpg", inputs.good)], "pB")
    ctype = [("content-type", "multipart/form-data; boundary=pB")]
    return [
        Case("paths", "GET random path", "GET", f"/{token}", expect=404),
        Case("paths", "POST random path with a photo", "POST", f"/{token}", ctype, body, expect=404),
        Case("paths", "GET /emotion/<random>", "GET", f"/emotion/{token}", expect=404),
        Case("paths", "POST /emotion/batch/x with a photo", "POST", "/emotion/batch/x", ctype, body, expect=404),
        Case("paths", "POST /emotion/ (trailing slash)", "POST", "/emotion/", ctype, body),
        Case("paths", "POST //emotion", "POST", "//emotion", ctype, body),
        Case("paths", "GET %2e%2e/%2e%2e/etc/passwd", "GET", "/%2e%2e/%2e%2e/etc/passwd", expect=404),
        Case("paths", "GET /ui/%2e%2e/service.py", "GET", "/ui/%2e%2e/service.py", expect=404),
        Case("paths", "GET /ui/missing.js", "GET", f"/ui/{token}.js", expect=404),
        Case("paths", "GET path with %00", "GET", f"/{token}%00.jpg", expect=404),
        Case("paths", "GET path of 8 KB", "GET", "/" + "a" * 8000, expect=404),
        Case("paths", "GET non-ASCII path", "GET", "/%C3%A9motion", expect=404),
        Case("paths", "GET /metrics/x", "GET", "/metrics/x", expect=404),
        Case("paths", "GET unknown path with a query", "GET", f"/{token}?a=1&b=" + "x" * 2000, expect=404),
    ]


def raw_cases(inputs: Inputs, rng: random.Random) -> list[Case]:
    body = multipart([("image", "a.jpg", inputs.good)], "rB")
    mp = "Content-Type: multipart/form-data; boundary=rB"
    valid = raw_request("POST", "/emotion", ["Host: x", mp, f"Content-Length: {len(body)}"], body)
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    def case(name, data, path="/emotion", expect=None):
        return Case("raw-http", name, "RAW", path, raw=data, expect=expect)

    return [
        case("valid request (control)", valid, expect=200),
        case("garbage request line", b"GARBAGE\r\n\r\n", "", 400),
        case("header line without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "", 400),
        case("negative Content-Length", raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: -5"]),
             expect=400),
        case("non-numeric Content-Length", raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: abc"]),
             expect=400),
        case("Content-Length of 10^20 on /emotion",
             raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: " + "9" * 20])),
        case("Content-Length of 5000 digits on /emotion",
             raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: " + "9" * 5000])),
        case("Content-Length of 10^20 on an unknown path",
             raw_request("POST", "/nope", ["Host: x", "Content-Length: " + "9" * 20]), ""),
        case("two different Content-Lengths",
             raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: 5", "Content-Length: 6"], b"abcdef"),
             expect=400),
        case("Content-Length and chunked", raw_request("POST", "/emotion", ["Host: x", mp, "Content-Length: 5",
                                                                            "Transfer-Encoding: chunked"], chunked)),
        case("chunked photo (legal)", raw_request("POST", "/emotion", ["Host: x", mp, "Transfer-Encoding: chunked"],
                                                  chunked), expect=200),
        case("bad chunk size", raw_request("POST", "/emotion", ["Host: x", mp, "Transfer-Encoding: chunked"],
                                           b"zz\r\nabc\r\n0\r\n\r\n")),
        case("chunk promised, never sent", raw_request("POST", "/emotion", ["Host: x", mp,
                                                                            "Transfer-Encoding: chunked"],
                                                       b"ffffff\r\nabc")),
        case("Transfer-Encoding: gzip", raw_request("POST", "/emotion", ["Host: x", mp, "Transfer-Encoding: gzip"],
                                                    body)),
        case("body shorter than Content-Length (408 after the grace time)",
             raw_request("POST", "/emotion", ["Host: x", mp, f"Content-Length: {len(body) + 100}"], body)),
        case("body longer than Content-Length",
             raw_request("POST", "/emotion", ["Host: x", mp, f"Content-Length: {len(body)}"], body + b"JUNK" * 50)),
        case("HTTP/0.9 request line", b"GET /\r\n\r\n", ""),
        case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ""),
        case("HTTP/1.1 without Host", raw_request("GET", "/livez", []), "", 400),
        case("HTTP/1.0 GET /livez (legal)", raw_request("GET", "/livez", [], version="HTTP/1.0"), "", 200),
        case("HTTP/3.0 version", raw_request("GET", "/livez", ["Host: x"], version="HTTP/3.0"), ""),
        case("lower-case method", raw_request("get", "/livez", ["Host: x"]), ""),
        case("request line of 64 KiB", raw_request("GET", "/" + "a" * 65536, ["Host: x"]), ""),
        case("header of 64 KiB", raw_request("GET", "/livez", ["Host: x", "X-Big: " + "y" * 65536]), ""),
        case("2000 headers", raw_request("GET", "/livez", ["Host: x"] + [f"X-H{i}: v" for i in range(2000)]), ""),
        case("NUL in a header value", b"GET /livez HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "", 400),
        case("header name with a space", raw_request("GET", "/livez", ["Host: x", "Bad Name: v"]), "", 400),
        case("obsolete line folding", raw_request("GET", "/livez", ["Host: x", "X-A: a", " folded"]), ""),
        case("LF-only line endings", b"GET /livez HTTP/1.1\nHost: x\n\n", ""),
        case("non-ASCII bytes in the path", b"GET /\xff\xfe\x00 HTTP/1.1\r\nHost: x\r\n\r\n", ""),
        case("path traversal", raw_request("GET", "/../../../etc/passwd", ["Host: x"]), ""),
        case("path traversal under /ui", raw_request("GET", "/ui/../../service.py", ["Host: x"]), ""),
        case("absolute-form target", raw_request("GET", "http://evil.example/livez", ["Host: x"]), ""),
        case("asterisk-form OPTIONS", raw_request("OPTIONS", "*", ["Host: x"]), ""),
        case("CONNECT", raw_request("CONNECT", "evil.example:443", ["Host: evil.example:443"]), ""),
        case("TRACE /emotion", raw_request("TRACE", "/emotion", ["Host: x"]), "", 405),
        case("websocket upgrade on /emotion", raw_request("GET", "/emotion", [
            "Host: x", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]), ""),
        case("h2c upgrade", raw_request("GET", "/livez", ["Host: x", "Connection: Upgrade, HTTP2-Settings",
                                                          "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"]), ""),
        case("Expect: 100-continue (legal)", raw_request("POST", "/emotion", [
            "Host: x", mp, f"Content-Length: {len(body)}", "Expect: 100-continue"], body), expect=200),
        case("two pipelined requests", raw_request("GET", "/livez", ["Host: x"]) + valid, "", 200),
        case("body of 11 MiB (over the limit)", raw_request("POST", "/emotion", [
            "Host: x", mp, f"Content-Length: {11 << 20}"], bytes(11 << 20))),
    ] + [case("random bytes", rng.randbytes(rng.randrange(1, 400)), "") for _ in range(4)] + [
        case("mutated request head", fuzzing.mutate(valid[:160], rng) + valid[160:], "") for _ in range(8)] + [
        case("bit-flipped request head", fuzzing.bit_flips(valid[:160], rng) + valid[160:], "") for _ in range(8)]


FIXED = {"multipart": multipart_cases, "content-types": content_type_cases, "fields": field_cases,
         "shapes": shape_cases, "answers": answer_cases, "methods": method_cases, "paths": path_cases,
         "raw-http": raw_cases}
RANDOM = {"bit-flips": lambda i, r: damaged("bit-flips", i, r), "truncations": lambda i, r: damaged("truncations", i, r),
          "mutations": lambda i, r: damaged("mutations", i, r), "exif": exif_case, "modes": mode_case,
          "bombs": bomb_case, "empty": empty_case, "non-images": non_image_case}


def build_cases(total: int, seed: int) -> list[Case]:
    """About `total` cases, KINDS' shares of it, in a seeded random order. Kinds with a fixed
    list go through it in turn (their random parts drawn again each round)."""
    rng = random.Random(seed)
    inputs = Inputs(random.Random(seed + 1))
    cases = []
    for kind, share in KINDS.items():
        count = max(1, round(total * share))
        if kind in RANDOM:
            cases += [RANDOM[kind](inputs, rng) for _ in range(count)]
        else:
            made: list[Case] = []
            while len(made) < count:
                made += FIXED[kind](inputs, rng)
            cases += made[:count]
    rng.shuffle(cases)
    return cases


# ---------- sending ----------

async def read_response(reader: asyncio.StreamReader) -> tuple[int | None, dict, bytes]:
    """The first final (non-1xx) response on the socket: (status, headers, body); status
    None when the connection closed before a whole head arrived."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = await reader.read(65536)
            if not chunk:
                return None, {}, buffer
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return None, {}, buffer
        if 100 <= status < 200:
            buffer = rest
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            size = int(headers["content-length"])
            while len(rest) < size:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                rest += chunk
            return status, headers, rest[:size]
        if "chunked" in headers.get("transfer-encoding", ""):
            while not rest.endswith(b"0\r\n\r\n"):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                rest += chunk
            return status, headers, dechunk(rest)
        while chunk := await reader.read(65536):
            rest += chunk
        return status, headers, rest


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def send_raw(host: str, port: int, case: Case, timeout: float, raw_wait: float) -> Outcome:
    """Write the bytes (in the background: the server may answer and close first), read the
    first answer. A request whose head never ends waits raw_wait, then counts as held open."""
    outcome = Outcome(case)
    head_complete = b"\r\n\r\n" in case.raw or b"\n\n" in case.raw
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as error:
        outcome.failure = f"closed ({type(error).__name__} on connect)"
        return outcome

    async def write():
        try:
            for start in range(0, len(case.raw), 1 << 16):
                writer.write(case.raw[start:start + (1 << 16)])
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    writing = asyncio.create_task(write())
    try:
        status, headers, body = await asyncio.wait_for(read_response(reader),
                                                       timeout if head_complete else raw_wait)
        if status is None:
            outcome.failure = "closed" + (f" after {len(body)} bytes" if body else "")
        outcome.status, outcome.headers, outcome.body = status, headers, body
    except asyncio.TimeoutError:
        outcome.failure = "hang" if head_complete else "held open"
    except (ConnectionError, OSError) as error:
        outcome.failure = f"closed ({type(error).__name__})"
    finally:
        writing.cancel()
        writer.close()
    return outcome


async def send(client: httpx.AsyncClient, url: str, case: Case, timeout: float, raw_wait: float) -> Outcome:
    started = time.perf_counter()
    if case.raw is not None:
        parsed = httpx.URL(url)
        outcome = await send_raw(parsed.host, parsed.port or 80, case, timeout, raw_wait)
    else:
        outcome = Outcome(case)
        try:
            response = await client.request(case.method, url + case.path, headers=case.headers, content=case.body)
            outcome.status, outcome.headers, outcome.body = (response.status_code,
                                                              {k.lower(): v for k, v in response.headers.items()},
                                                              response.content)
        except httpx.TimeoutException:
            outcome.failure = "hang"
        except httpx.TransportError as error:
            outcome.failure = f"closed ({type(error).__name__})"
    outcome.seconds = time.perf_counter() - started
    return outcome


async def run(url: str, cases: list[Case], concurrency: int, timeout: float, raw_wait: float,
              progress: float) -> tuple[list[Outcome], float]:
    queue: asyncio.Queue = asyncio.Queue()
    for case in cases:
        queue.put_nowait(case)
    outcomes: list[Outcome] = []
    started = last = time.perf_counter()

    async def worker(client):
        nonlocal last
        while not queue.empty():
            outcomes.append(await send(client, url, queue.get_nowait(), timeout, raw_wait))
            if progress and time.perf_counter() - last > progress:
                last = time.perf_counter()
                bad = sum(bool(problems(o)) for o in outcomes)
                print(f"  {len(outcomes)}/{len(cases)} in {last - started:.0f} s, {bad} failing so far", flush=True)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


# ---------- checking ----------

def shaped(body: bytes, status: int) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return (isinstance(parsed, dict) and set(parsed) == ERROR_KEYS and parsed["status"] == status
            and isinstance(parsed["error"], str) and isinstance(parsed["code"], str) and parsed["code"] != "")


def faces_ok(faces) -> bool:
    return isinstance(faces, list) and all(isinstance(f, dict) and set(f) == FACE_KEYS for f in faces)


MAX_HEADER_FACES = 32  # emotionlib/serving/fields.py: X-Emotion-Faces carries at most this many


def good_annotation(outcome: Outcome) -> bool:
    """An image with its faces in X-Emotion-Faces (under 8 KB, at most 32 faces; left out past
    that) and their count in X-Emotion-Face-Count; or, asked for, the faces and the image as JSON."""
    headers, count = outcome.headers, outcome.headers.get("x-emotion-face-count", "")
    if not count.isdigit():
        return False
    if headers.get("content-type", "") == "application/json":
        body = json.loads(outcome.body)
        return (set(body) == {"faces", "media_type", "image"} and faces_ok(body["faces"])
                and len(body["faces"]) == int(count) and base64.b64decode(body["image"])[:2] in (b"\xff\xd8", b"\x89P"))
    if headers.get("content-type", "") not in ("image/jpeg", "image/png"):
        return False
    if int(count) > MAX_HEADER_FACES:
        return "x-emotion-faces" not in headers
    header = headers.get("x-emotion-faces", "")
    faces = json.loads(header)
    return len(header) < 8 * 1024 - 40 and faces_ok(faces) and len(faces) == int(count)


def good_200(outcome: Outcome) -> bool:
    path = outcome.case.path.split("?")[0].rstrip("/")
    if path not in IMAGE_ROUTES or outcome.case.method == "HEAD":
        return True
    try:
        if path == "/emotion/annotate":
            return good_annotation(outcome)
        parsed = json.loads(outcome.body)
    except ValueError:
        return False
    if path == "/emotion":
        return faces_ok(parsed)
    return isinstance(parsed, list) and all(
        isinstance(e, dict) and (faces_ok(e.get("faces")) if "faces" in e else set(e) == ERROR_KEYS) for e in parsed)


def problems(outcome: Outcome) -> list[str]:
    """What is wrong with this answer: '5xx', 'hang', 'closed', 'bad 4xx', 'bad 200', 'unexpected'."""
    out, status, case = [], outcome.status, outcome.case
    if outcome.failure == "hang":
        out.append("hang")
    elif status is None:
        if case.raw is None:  # an HTTP client's well-formed request must get an answer
            out.append("closed")
    elif status >= 500:
        out.append("5xx")
    elif status >= 400 and case.method != "HEAD" and not (
            outcome.headers.get("content-type", "").startswith("application/json") and shaped(outcome.body, status)):
        out.append("bad 4xx")
    elif status == 200 and not good_200(outcome):
        out.append("bad 200")
    if case.expect is not None and status != case.expect and "hang" not in out:
        out.append("unexpected")
    return out


# ---------- the report ----------

def metrics_lines(url: str) -> tuple[int, set[str]]:
    """(lines of /metrics, the endpoint labels in them)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return len(text.splitlines()), set(re.findall(r'endpoint="([^"]*)"', text))


def example(outcome: Outcome) -> str:
    case = outcome.case
    where = f"{case.method} {case.path}" if case.raw is None else f"raw {case.raw[:60]!r}"
    answer = outcome.failure or f"{outcome.status} {outcome.body[:200]!r}"
    return f"[{case.kind}] {case.name} ({where}, {outcome.seconds:.1f} s): {answer}"


def report(outcomes: list[Outcome], elapsed: float, examples: int) -> int:
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.case.kind].append(outcome)
    columns = ("5xx", "hang", "closed", "bad 4xx", "bad 200", "unexpected")
    print(f"\n{'kind':<14}{'cases':>6}{'2xx':>6}{'4xx':>6}{'5xx':>5}{'hang':>5}{'no answer':>10}{'bad 4xx':>8}"
          f"{'bad 200':>8}{'unexp.':>7}{'p50 s':>7}{'max s':>7}  statuses")
    totals: Counter = Counter()
    for kind in [k for k in KINDS if k in by_kind]:
        rows = by_kind[kind]
        statuses = Counter(o.status if o.status is not None else o.failure.split(" (")[0] for o in rows)
        found = Counter(p for o in rows for p in problems(o))
        count = Counter({"cases": len(rows), "2xx": sum(o.status is not None and o.status < 300 for o in rows),
                         "4xx": sum(o.status is not None and 400 <= o.status < 500 for o in rows),
                         "no answer": sum(o.status is None and o.failure != "hang" for o in rows)})
        count.update(found)
        totals.update(count)
        seconds = [o.seconds for o in rows]
        shown = " ".join(f"{s}:{n}" for s, n in sorted(statuses.items(), key=lambda kv: str(kv[0])))
        print(f"{kind:<14}{count['cases']:>6}{count['2xx']:>6}{count['4xx']:>6}{count['5xx']:>5}{count['hang']:>5}"
              f"{count['no answer']:>10}{count['bad 4xx']:>8}{count['bad 200']:>8}{count['unexpected']:>7}"
              f"{statistics.median(seconds):>7.2f}{max(seconds):>7.1f}  {shown}")
    print(f"{'total':<14}{totals['cases']:>6}{totals['2xx']:>6}{totals['4xx']:>6}{totals['5xx']:>5}"
          f"{totals['hang']:>5}{totals['no answer']:>10}{totals['bad 4xx']:>8}{totals['bad 200']:>8}"
          f"{totals['unexpected']:>7}")
    print(f"\n{len(outcomes)} requests in {elapsed:.1f} s: {len(outcomes) / elapsed:.1f} requests/s")
    codes = Counter()
    for outcome in outcomes:
        if outcome.status and outcome.status >= 400 and shaped(outcome.body, outcome.status):
            codes[f"{outcome.status} {json.loads(outcome.body)['code']}"] += 1
    print("error codes: " + ", ".join(f"{c} x{n}" for c, n in codes.most_common()))
    raw = [o for o in outcomes if o.case.raw is not None]
    print(f"raw socket: {len(raw)} cases, {sum(o.status is not None for o in raw)} answered "
          f"({', '.join(f'{s}: {n}' for s, n in Counter(o.status for o in raw if o.status).most_common())}), "
          f"{sum(o.failure.startswith('closed') for o in raw)} closed without an answer, "
          f"{sum(o.failure == 'held open' for o in raw)} held open (head never ended; the client left)")
    failures = 0
    for name in columns:
        bad = [o for o in outcomes if name in problems(o)]
        failures += len(bad)
        print(f"{name}: {len(bad)}")
        for outcome in bad[:examples]:
            print("    " + example(outcome))
    return failures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running service (loopback) instead of starting `bentoml serve`")
    p.add_argument("--cases", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=90, help="seconds a request may take before it is a hang")
    p.add_argument("--raw-wait", type=float, default=10, help="seconds to wait on a request whose head never ends")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--kinds", help="comma-separated subset of: " + ", ".join(KINDS))
    p.add_argument("--examples", type=int, default=5, help="examples printed per kind of failure")
    p.add_argument("--progress", type=float, default=30, help="print progress every N seconds (0: never)")
    args = p.parse_args()
    if args.kinds:
        unknown = set(args.kinds.split(",")) - set(KINDS)
        if unknown:
            raise SystemExit(f"unknown kinds {sorted(unknown)}")
        for kind in set(KINDS) - set(args.kinds.split(",")):
            del KINDS[kind]

    built = time.perf_counter()
    cases = build_cases(args.cases, args.seed)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, {os.cpu_count()} cores; "
          f"{len(cases)} cases (seed {args.seed}, built in {time.perf_counter() - built:.0f} s), "
          f"concurrency {args.concurrency}, timeout {args.timeout:g} s", flush=True)
    with service(args.url, name="hostile") as (url, port, pid, log_path):
        warm = httpx.post(f"{url}/emotion", files={"image": ("o.jpg", (FIXTURES / "obama.jpg").read_bytes())},
                          timeout=120)
        print(f"service {url}: warm-up /emotion {warm.status_code}", flush=True)
        rss_before, lines_before = server_rss(port, pid), metrics_lines(url)
        outcomes, elapsed = asyncio.run(run(url, cases, args.concurrency, args.timeout, args.raw_wait,
                                            args.progress))
        time.sleep(2)
        rss_after, lines_after = server_rss(port, pid), metrics_lines(url)
        time.sleep(28)  # the workers give memory back once idle (emotionlib/serving/memory.py); held-open raw requests end first
        rss_idle = server_rss(port, pid)
        ready = httpx.get(f"{url}/readyz", timeout=30).status_code
        check = httpx.post(f"{url}/emotion", files={"image": ("o.jpg", (FIXTURES / "obama.jpg").read_bytes())},
                           timeout=120)
        log = log_path.read_text(errors="replace") if log_path else ""
    failures = report(outcomes, elapsed, args.examples)
    print(f"server RSS: {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB 2 s after, "
          f"{rss_idle / 2**20:.0f} MiB 30 s after")
    print(f"/metrics: {lines_before[0]} lines before, {lines_after[0]} after; endpoint labels after: "
          f"{sorted(lines_after[1])} (new: {sorted(lines_after[1] - lines_before[1])})")
    faces = len(check.json()) if check.status_code == 200 else None
    print(f"after the sweep: /readyz {ready}, the portrait {check.status_code} with {faces} face(s)")
    if log_path:
        tracebacks = log.count("Traceback (most recent call last)")
        print(f"server log {log_path}: {tracebacks} tracebacks")
        failures += tracebacks
    failures += ready != 200 or faces != 1
    print("PASS" if not failures else f"FAIL: {failures} problems")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
