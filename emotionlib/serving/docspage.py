"""The API page at ``/`` and its OpenAPI document ``/docs.json``, in place of BentoML's.

BentoML's index page (_bentoml_impl/server/main-openapi.html) embeds Google Tag Manager, and
its OpenAPI document's description (``get_default_svc_readme`` under ``bentoml serve .``, the
Bento's README in an image) shows badge images from img.shields.io, readthedocs.org and
badgen.net: every browser that opened the docs contacted those hosts. ``ui/docs.html``
is the same Swagger UI from BentoML's own static files without the tag manager (and without
Swagger UI's online validator badge), and the document is BentoML's with the description below.

BentoML mounts the apps given to ``mount_asgi_app`` passively (a mount matches only the paths
its app routes) and before its own routes for ``/`` and ``/docs.json``, so an app with just
these two routes, mounted at ``/``, answers them and nothing else: no patch.
"""
from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).parent / "ui" / "docs.html"
DESCRIPTION = """\
Face emotion recognition: every face in a JPEG or PNG photo with one of six emotions (happy,
sad, angry, fear, surprise, neutral) and its probabilities; every person's emotions over a video
clip (`/emotion/video`, long clips as a task). Every answer of 400 and above is a
JSON object `{"error", "code", "status"}` (the `Error` schema); each endpoint lists the codes of
each status it answers with. A page to try it in a browser: [/ui](/ui/)."""


def docs_pages(service):
    """An ASGI app answering GET / (the API page) and GET /docs.json (the service's OpenAPI
    document with every answer in our shape, emotionlib.serving.openapi, and DESCRIPTION)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    from emotionlib.serving.openapi import document as our_answers

    document = {}

    async def page(_request):
        return FileResponse(PAGE, media_type="text/html")

    async def openapi(_request):
        if not document:  # the same document for every request: made once
            document.update(our_answers(service.openapi_spec.asdict(), DESCRIPTION))
        return JSONResponse(document)

    return Starlette(routes=[Route("/", page, methods=["GET", "HEAD"]),
                             Route("/docs.json", openapi, methods=["GET", "HEAD"])])
