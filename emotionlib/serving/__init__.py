"""The HTTP layer around the face pipeline, imported by service.py alone.

Settings (settings.py), the upload guard and form checks (upload.py, fields.py), the API
key (access.py), the JSON error shape (errorshape.py), metrics (metrics.py), the model
worker's batcher (batching.py), memory release (memory.py), the page GET /ui (ui/). The
face pipeline (emotionlib outside this package) imports nothing from here.
"""
