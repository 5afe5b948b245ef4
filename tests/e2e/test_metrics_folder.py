"""Two servers on one BENTOML_HOME keep their own metrics (issue 16): BentoML empties its one
Prometheus folder under BENTOML_HOME whenever a server starts (emotionlib/serving/patches.py
separate_metrics_folder)."""
from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Served


def refused(url: str) -> float:
    """The server's count of uploads refused as not an image."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "emotion_rejected_requests_total" and sample.labels.get("reason") == "not_an_image")


def refuse(url: str, times: int) -> None:
    for _ in range(times):
        response = httpx.post(f"{url}/emotion", files={"image": ("a.txt", b"not an image", "text/plain")}, timeout=30)
        assert response.status_code == 400 and response.json()["code"] == "not_an_image"


def test_another_servers_start_leaves_the_metrics_alone(served, bundled_model_store, tmp_path):
    refuse(served.url, 3)
    before = refused(served.url)
    assert before >= 3
    other = Served(bundled_model_store, tmp_path / "other.log")
    try:
        other.wait_ready()
        assert refused(other.url) == 0  # it does not report the first server's counters
        refuse(other.url, 2)
        assert refused(other.url) == 2
        assert refused(served.url) == before  # nor does its start or its traffic touch them
    finally:
        other.stop()
    refuse(served.url, 1)
    assert refused(served.url) == before + 1

