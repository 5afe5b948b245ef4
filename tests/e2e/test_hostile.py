"""A real `bentoml serve` with an API key and short upload deadlines, attacked as the
internet would: slow clients, malformed HTTP, invented paths, odd but legal requests."""
from __future__ import annotations

import io
import socket
import threading
import time
import uuid

import httpx
import pytest
from PIL import Image

from tests.helpers import FIXTURES, Served, documented, encode

KEY = "test-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {KEY}"}
SLOW_CLIENTS = 8
ENV = {
    "EMOTION_API_KEY": KEY,
    "EMOTION_MAX_REQUESTS_IN_PROGRESS": "4",  # processing slots: fewer than the slow clients
    "EMOTION_MAX_UPLOADS_IN_PROGRESS": "16",
    "EMOTION_UPLOAD_GRACE_S": "20",      # slow clients stay connected while normal ones are served
    "EMOTION_UPLOAD_TIMEOUT_S": "24",
    "EMOTION_UPLOAD_MIN_KIB_S": "16",
    "EMOTION_MAX_BATCH_UPLOAD_MB": "10",
    "EMOTION_MAX_UPLOAD_MB_IN_PROGRESS": "12",  # two 7 MB bodies at once are one too many
    "EMOTION_MAX_VIDEO_MB": "10",  # a clip's body counts there too, so it may not be larger
}


@pytest.fixture(scope="module")
def served(bundled_model_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "tmp").mkdir()
    server = Served(bundled_model_store, tmp / "serve.log", {**ENV, "TMPDIR": str(tmp / "tmp")})
    server.tmpdir = tmp / "tmp"
    server.wait_ready()
    yield server
    server.stop()


def photo() -> bytes:
    return (FIXTURES / "obama.jpg").read_bytes()


def shaped(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code", "status"} and body["status"] == status, body
    if code:
        assert body["code"] == code, body
    return body


def test_api_key_required_except_probes_and_metrics(served):
    url = served.url
    shaped(httpx.post(f"{url}/emotion", files={"image": ("o.jpg", photo(), "image/jpeg")}, timeout=60),
           401, "unauthorized")
    wrong = {"Authorization": "Bearer " + "x" * len(KEY)}
    response = httpx.post(f"{url}/emotion", files={"image": ("o.jpg", photo(), "image/jpeg")}, headers=wrong,
                          timeout=60)
    shaped(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    for path in ("/livez", "/readyz", "/metrics", "/", "/docs.json", "/static_content/swagger-ui.css"):
        assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, path
    response = httpx.post(f"{url}/emotion", files={"image": ("o.jpg", photo(), "image/jpeg")}, headers=AUTH,
                          timeout=60)
    assert response.status_code == 200 and len(response.json()) == 1


def test_python_client_with_the_key(served):
    import bentoml

    with bentoml.SyncHTTPClient(served.url, token=KEY) as client:
        assert len(client.emotion(image=FIXTURES / "obama.jpg")) == 1


def slow_client(port: int, results: list, index: int) -> None:
    """Headers, then the body at 1 byte/s; records the status line it finally gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST /emotion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n".encode())
        sock.settimeout(1.0)
        answer = b""
        for _ in range(30):
            try:
                sock.sendall(b"-")
                answer = sock.recv(65536)
                if answer:
                    while chunk := sock.recv(65536):  # the rest, until the server closes
                        answer += chunk
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        results[index] = answer


def test_slow_clients_do_not_take_the_processing_slots(served):
    results: list = [None] * SLOW_CLIENTS
    threads = [threading.Thread(target=slow_client, args=(served.port, results, i)) for i in range(SLOW_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # all slow uploads are in progress: more of them than processing slots
    with httpx.Client(headers=AUTH, timeout=60) as client:
        answers = [client.post(f"{served.url}/emotion", files={"image": ("o.jpg", photo(), "image/jpeg")})
                   for _ in range(3)]
    still_uploading = sum(result is None for result in results)
    for thread in threads:
        thread.join(40)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert still_uploading >= SLOW_CLIENTS - 1, "the slow clients were cut before the normal requests ran"
    document = httpx.get(f"{served.url}/docs.json", timeout=10).json()
    for answer in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert body_of(answer)["code"] == "incomplete_upload"
        documented(document, "/emotion", raw_response(answer))


def raw_response(answer: bytes) -> httpx.Response:
    """A raw HTTP/1.1 answer (no chunked body) as an httpx.Response."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def test_api_key_and_overload_answers_match_the_document(served):
    """401 on every endpoint, and 503 when the bodies in progress would pass
    EMOTION_MAX_UPLOAD_MB_IN_PROGRESS (a clip's too, spooled into its temporary file), as
    /docs.json (open without the key) describes them."""
    from emotionlib.serving.openapi import OPERATIONS

    document = httpx.get(f"{served.url}/docs.json", timeout=10).json()
    for route in ("/emotion", "/emotion/annotate", "/emotion/batch"):
        field = "images" if route.endswith("batch") else "image"
        response = httpx.post(f"{served.url}{route}", files={field: ("o.jpg", photo(), "image/jpeg")}, timeout=60)
        assert documented(document, route, response) and response.status_code == 401
    for method, route in OPERATIONS:  # the video endpoints, the task's queries, the refused task routes
        files = {"video": ("c.mp4", b"clip", "video/mp4")} if method == "post" else None
        response = httpx.request(method.upper(), f"{served.url}{route}", files=files, params={"task_id": "x"},
                                 timeout=60)
        assert documented(document, route, response, method) and response.status_code == 401
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as holder:
        holder.sendall(f"POST /emotion HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                       "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 7000000\r\n\r\n".encode())
        time.sleep(0.5)  # its 7 MB are counted from its Content-Length
        for route in ("/emotion", "/emotion/annotate", "/emotion/batch", "/emotion/video",
                      "/emotion/video/task/submit"):
            field = {"/emotion/batch": "images", "/emotion": "image", "/emotion/annotate": "image"}.get(route, "video")
            response = httpx.post(f"{served.url}{route}", headers=AUTH, timeout=60,
                                  files={field: ("big.jpg", photo() + b"\0" * 7_000_000, "image/jpeg")})
            assert response.status_code == 503 and response.json()["code"] == "overloaded", response.text[:200]
            assert response.headers["retry-after"] == "1"
            documented(document, route, response)


def body_of(answer: bytes) -> dict:
    """The JSON error body of a raw HTTP answer, checked for the shape."""
    import json

    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert set(body) == {"error", "code", "status"}
    return body


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_malformed_http_gets_the_json_shape(served):
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                    b"POST /emotion HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        answer = raw(served.port, request)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"application/json" in answer and body_of(answer)["code"] == "malformed_http"


@pytest.mark.parametrize("path, auth, status", [("/emotion", True, 400), ("/nope", True, 404),
                                               ("/emotion", False, 401)])
def test_content_type_that_is_not_utf8_gets_an_answer(served, path, auth, status):
    """BentoML's access log decoded the request's Content-Type as UTF-8 while the answer went
    out: a byte like 0xE9 raised there and the connection was closed without an answer
    (found by benchmarks/hostile_sweep.py; an in-process test client re-encodes the header)."""
    body = multipart([("image", "o.jpg", b"\xff\xd8 small: the server may answer before reading it")], boundary="b")
    answer = raw(served.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                 + (f"Authorization: Bearer {KEY}\r\n".encode() if auth else b"")
                 + f"Content-Length: {len(body)}\r\n".encode()
                 + b"Content-Type: multipart/form-data; boundary=\xe9\xff\r\n\r\n" + body)
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    assert b"application/json" in answer and body_of(answer)["status"] == status


@pytest.mark.parametrize("path", ["/emotion", "/nope"])
def test_websocket_handshake_gets_the_json_shape(served, path):
    """The service has no WebSocket endpoint; uvicorn answered a handshake 403 with an empty
    body (found by benchmarks/hostile_sweep.py)."""
    answer = raw(served.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                 "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"application/json" in answer and body_of(answer)["code"] == "forbidden"


def multipart(fields: list[tuple[str, str | None, bytes]], boundary: str = "bnd") -> bytes:
    out = b""
    for name, filename, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MATRIX = [  # (method, path, headers, body, status, code)
    ("GET", "/nope", {}, b"", 404, "not_found"),
    ("GET", "/emotion", {}, b"", 405, "method_not_allowed"),
    ("DELETE", "/readyz", {}, b"", 405, "method_not_allowed"),
    ("POST", "/emotion", {"content-type": "application/json"}, b'{"image": "x"}', 415, "unsupported_media_type"),
    ("POST", "/emotion", {"content-type": "multipart/form-data; boundary=bnd"},
     multipart([("picture", "x.jpg", b"\xff\xd8")]), 400, "missing_field"),
    ("POST", "/emotion", {"content-type": "multipart/form-data; boundary=zzz"}, b"--nope\r\ngarbage", 400, None),
    ("POST", "/emotion", {"content-type": "multipart/form-data; boundary=bnd"},
     multipart([("image", "x.jpg", b"\xff\xd8\xff\xe0garbage")]), 400, None),
    ("POST", "/emotion", {"content-type": "multipart/form-data; boundary=bnd"},
     multipart([("image", "x.gif", encode(Image.new("RGB", (8, 8)), "GIF"))]), 415, "unsupported_image_type"),
    ("POST", "/emotion", {"content-type": "multipart/form-data; boundary=bnd", "content-length": str(11 << 20)},
     b"", 413, "upload_too_large"),
]


@pytest.mark.parametrize("method, path, headers, body, status, code", MATRIX,
                         ids=[f"{m} {p} {s}" for m, p, _, _, s, _ in MATRIX])
def test_error_shape_matrix(served, method, path, headers, body, status, code):
    if headers.get("content-length"):  # claim a big body, send none: refused from the header
        answer = raw(served.port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                     f"Content-Type: {headers['content-type']}\r\nContent-Length: {headers['content-length']}"
                     "\r\n\r\n".encode())
        assert answer.startswith(f"HTTP/1.1 {status}".encode()) and body_of(answer)["code"] == code
        return
    response = httpx.request(method, f"{served.url}{path}", headers={**headers, **AUTH}, content=body, timeout=60)
    shaped(response, status, code)


def test_odd_but_legal_requests_are_served(served):
    image = photo()
    body = multipart([("image", "a\x00b.jpg", image)])  # NUL byte in the file name
    response = httpx.post(f"{served.url}/emotion", content=body, timeout=60,
                          headers={**AUTH, "content-type": "multipart/form-data; boundary=bnd"})
    assert response.status_code == 200 and len(response.json()) == 1
    response = httpx.post(f"{served.url}/emotion", content=multipart([("image", "a.jpg", image)]), timeout=60,
                          headers={**AUTH, "content-type": "MULTIPART/FORM-DATA; boundary=bnd"})
    assert response.status_code == 200 and len(response.json()) == 1
    for spelling in ("TRUE", "1", "yes", "On"):
        response = httpx.post(f"{served.url}/emotion", content=multipart([("image", "a.jpg", image),
                                                                          ("detect", None, spelling.encode())]),
                              timeout=60, headers={**AUTH, "content-type": "multipart/form-data; boundary=bnd"})
        assert response.status_code == 200, (spelling, response.text)


def test_uploads_never_reach_the_disk(served):
    big = Image.open(FIXTURES / "obama.jpg").convert("RGB").resize((2400, 3000))
    data = encode(big, quality=95)
    assert len(data) > 1024 * 1024  # over starlette's default in-memory limit for a part
    response = httpx.post(f"{served.url}/emotion", files={"image": ("big.jpg", data, "image/jpeg")},
                          headers=AUTH, timeout=60)
    assert response.status_code == 200
    leftovers = [p.name for p in served.tmpdir.rglob("*") if "request" in p.name]
    assert leftovers == []  # BentoML writes a Path upload under TMPDIR/bentoml-request-*


def series(url: str) -> set[str]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_invented_paths_add_no_metrics_series(served):
    """Also under /ui/, where the static files' mount matches any file name: 20 invented
    file names there made 20 endpoint labels (found by benchmarks/hostile_sweep.py)."""
    httpx.get(f"{served.url}/first-unknown", headers=AUTH, timeout=10)
    httpx.get(f"{served.url}/ui/first-unknown.js", headers=AUTH, timeout=10)
    assert httpx.get(f"{served.url}/ui/ui.js", headers=AUTH, timeout=10).status_code == 200
    before = series(served.url)
    for _ in range(20):
        response = httpx.get(f"{served.url}/{uuid.uuid4().hex}", headers=AUTH, timeout=10)
        shaped(response, 404, "not_found")
        shaped(httpx.get(f"{served.url}/ui/{uuid.uuid4().hex}.js", headers=AUTH, timeout=10), 404, "not_found")
    assert httpx.get(f"{served.url}/ui/ui.js", headers=AUTH, timeout=10).status_code == 200
    after = series(served.url)
    assert not any("first-unknown" in name for name in after)
    assert {name for name in after - before if "endpoint=" in name} == set()
