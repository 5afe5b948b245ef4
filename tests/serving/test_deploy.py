"""Kubernetes manifests validate against the Kubernetes schemas (kubernetes-validate)."""
from __future__ import annotations

import pytest
import yaml

from tests.helpers import ROOT

KUBERNETES_VERSION = "1.30"
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def documents():
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


@pytest.mark.parametrize("name, doc", list(documents()), ids=[f"{n}:{d['kind']}" for n, d in documents()])
def test_manifest_is_valid(name, doc):
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_invalid_manifest_is_caught():
    import kubernetes_validate

    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_the_set_is_complete():
    kinds = {doc["kind"] for _, doc in documents()}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = next(doc for _, doc in documents() if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 9000
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["resources"]["requests"] and container["resources"]["limits"]
