"""The HTTP layer around the face pipeline, imported by service.py alone.

settings.py     every EMOTION_* setting, defined once (the README's table is written from it)
upload.py       the upload guard: deadlines, body limits, form checks per route, processing slots
spool.py        a clip's upload streamed into a private temporary file as it arrives
fields.py       the form fields made into what the pipeline takes; the answer's JSON schema
photos.py       a request's photos through the pipeline (threads) and the model worker (deadline)
video.py        a clip through the pipeline (threads) and the model worker, the annotated WebM, the task
budget.py       the one memory budget for the decoded pixels (photos, clips' frames) in progress
errors.py       error codes -> HTTP statuses, the one JSON error shape, the endpoint decorator
openapi.py      the OpenAPI document: every answer of every endpoint in our shape
docspage.py     the API page GET / and GET /docs.json, without third-party requests
access.py       the optional API key
app.py          the ASGI layers around the API service, the page GET /ui (ui/) and the API page
readiness.py    the model worker's readiness, kept in the background for GET /readyz
batching.py     the model worker's greedy batcher
metrics.py      the service's Prometheus metrics
memory.py       giving memory back to the system when a worker is idle
patches.py      every patch of BentoML, starlette, uvicorn and glibc internals, with a version check

The face pipeline (emotionlib outside this package) imports nothing from here.
"""
