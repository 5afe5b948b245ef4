"""Optional access control: with an API key set, every request but the probes, the metrics and
the pages (the page to try it, the API documentation) needs ``Authorization: Bearer <key>``
(401 in the JSON error shape otherwise).

The key is compared in constant time (hmac.compare_digest), so the answer time tells
nothing about how much of a guessed key was right.
"""
from __future__ import annotations

import hmac

from emotionlib.errors import InputError
from emotionlib.serving.errors import reject

# Kubernetes probes and Prometheus scraping work without the key, and so do the static
# files of the page GET /ui (it holds no data; its calls to the API send the key) and the API's
# documentation: the page at / (the page's "API docs" link), its /docs.json and Swagger UI's
# files from BentoML (/static_content/).
OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics", "", "/docs.json"})
OPEN_PREFIXES = ("/ui/", "/static_content/")


def bearer_token(scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
    return None


class ApiKeyGuard:
    def __init__(self, app, api_key: str | None = None):
        self.app = app
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if self.key is None or scope["type"] != "http" or path.rstrip("/") in OPEN_PATHS \
                or (path + "/").startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        token = bearer_token(scope)
        if token is not None and hmac.compare_digest(token, self.key):
            return await self.app(scope, receive, send)
        error = InputError("unauthorized", "this server needs an API key: send the header "
                           "'Authorization: Bearer <key>'" if token is None else "the API key is not valid")
        return await reject(error, scope, receive, send, {"WWW-Authenticate": "Bearer"})
