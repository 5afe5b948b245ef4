"""emotionlib.serving.iocache: BentoML's per-response media type, remembered per IO class."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def services(bundled_model_store):
    import service

    return service.EmotionModel, service.EmotionAPI


def every_spec(services):
    for svc in services:
        for method in svc.apis.values():
            yield from (method.input_spec, method.output_spec)


def test_cached_media_type_is_bentomls_own_answer(services):
    from _bentoml_sdk.io_models import IOMixin

    patched = IOMixin.__dict__["mime_type"].__func__
    assert getattr(patched, "cached", False), "service.py installs the cache at import"
    for spec in every_spec(services):
        assert spec.mime_type() == patched.uncached(spec), spec
    emotion = services[1].apis["emotion"]
    assert emotion.input_spec.mime_type() == "multipart/form-data"
    assert emotion.output_spec.mime_type() == "application/json"


def test_schema_is_generated_once_per_class(services, monkeypatch):
    from emotionlib.serving.iocache import cache_media_types

    cache_media_types()  # idempotent: a second call keeps the one cache
    output = services[0].apis["predict"].output_spec
    expected = output.mime_type()  # fills the cache if no earlier call did
    calls = []
    original = output.model_json_schema.__func__
    monkeypatch.setattr(output, "model_json_schema",
                        classmethod(lambda cls, *a, **k: calls.append(1) or original(cls, *a, **k)))
    first = [output.mime_type() for _ in range(5)]
    assert first == [expected] * 5 and calls == []  # answered from the cache, no schema built
