"""Remember the media type of BentoML's IO models instead of working it out per response.

BentoML 1.4's ``IOMixin.mime_type`` decides a response's Content-Type by generating the
output model's whole JSON schema with pydantic, on every response of every service (and on
every call the API makes to the model worker). py-spy on both workers at concurrency 1
(YuNet, dev photos) put ~6% of the API worker's event-loop time and ~10% of the model
worker's there. A class's fields and ``media_type`` are fixed when the service is defined,
so the answer is remembered per class; it is the same string BentoML computes.
"""
from __future__ import annotations

import weakref


def cache_media_types() -> None:
    """Patch ``_bentoml_sdk.io_models.IOMixin.mime_type`` with a per-class cache (idempotent)."""
    from _bentoml_sdk.io_models import IOMixin

    current = IOMixin.__dict__["mime_type"].__func__
    if getattr(current, "cached", False):
        return
    known: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()

    def mime_type(cls) -> str:
        try:
            return known[cls]
        except KeyError:
            value = known[cls] = current(cls)
            return value

    mime_type.cached = True
    mime_type.uncached = current
    IOMixin.mime_type = classmethod(mime_type)
