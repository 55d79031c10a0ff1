"""Kubernetes manifests, Prometheus rules and the Grafana dashboard: they parse, and every
metric they use is one the project (or Flower) really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from assessment_store.http.app import create_app
from assessment_store.service import AssessmentStore
from tests.factories import failed, processing, request

ROOT = Path(__file__).resolve().parents[2]
FLOWER_SOURCE = next(Path(p) for p in __import__("flower").__path__)
METRIC_NAME = re.compile(r"\b((?:assessmentstore|flower)_[a-z_]+)\b")


def exported_metric_names(store: AssessmentStore) -> set[str]:
    """Every sample name the API's /metrics shows after some real work, plus Flower's."""
    done = processing(store)
    store.complete_assessment(done.assessment_id, {})
    failed(store)
    store.create_assessment(request())
    with TestClient(create_app(store, "x" * 40)) as client:
        body = client.get("/metrics").text
    from assessment_store import metrics

    metrics.PROCESSING_SECONDS.labels("health", "completed").observe(1)
    metrics.QUEUE_WAIT_SECONDS.labels("health").observe(1)
    metrics.ERRORS.labels("RuntimeError").inc()
    from prometheus_client import REGISTRY, generate_latest

    body += generate_latest(REGISTRY).decode()
    names = {
        line.split("{")[0].split(" ")[0]
        for line in body.splitlines()
        if line and not line.startswith("#")
    }
    for source in FLOWER_SOURCE.rglob("*.py"):
        names |= set(re.findall(r"['\"](flower_[a-z_]+)['\"]", source.read_text()))
    return names


def used_metric_names() -> dict[str, set[str]]:
    files = [ROOT / "ops/prometheus/alerts.yml", ROOT / "ops/grafana/assessment-store.json"]
    return {str(f.relative_to(ROOT)): set(METRIC_NAME.findall(f.read_text())) for f in files}


def test_every_metric_used_by_alerts_and_dashboard_is_exported(store: AssessmentStore) -> None:
    exported = exported_metric_names(store)
    flower_names = {n for n in exported if n.startswith("flower_")}
    for name in list(flower_names):
        exported |= {f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    for path, used in used_metric_names().items():
        assert used, f"{path} uses no metric at all"
        assert used <= exported, f"{path}: not exported: {sorted(used - exported)}"


def test_the_alert_rules_cover_what_operators_need() -> None:
    rules = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    expressions = " ".join(r["expr"] for r in alerts.values())
    for needed in (
        "assessmentstore_oldest_pending_age_seconds",
        "flower_worker_online",
        "assessmentstore_dead_letters",
        'to_state="failed"',
    ):
        assert needed in expressions
    assert all(r["annotations"]["summary"] and r["labels"]["severity"] for r in alerts.values())


def test_the_dashboard_is_valid_grafana_json() -> None:
    dashboard: dict[str, Any] = json.loads((ROOT / "ops/grafana/assessment-store.json").read_text())
    assert dashboard["panels"] and all(p["targets"] for p in dashboard["panels"])
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((ROOT / "ops/k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_deployments_have_probes_and_beat_is_a_single_replica() -> None:
    deployments = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "Deployment"}
    assert {"assessment-store-api", "assessment-store-beat"} <= set(deployments)
    assert sum(1 for n in deployments if n.startswith("assessment-store-worker-")) == 3
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][0] == "assessment-store", name
        if name != "assessment-store-beat":
            assert "livenessProbe" in container and "readinessProbe" in container, name
    api = deployments["assessment-store-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    beat = deployments["assessment-store-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"


def test_the_example_secret_would_be_refused_as_is() -> None:
    from assessment_store.config import load_settings
    from assessment_store.errors import ConfigurationError
    from assessment_store.flower_access import decide

    secret = next(d for d in manifests() if d["kind"] == "Secret")
    placeholder = secret["stringData"]["ASSESSMENT_STORE_JWT_SECRET"]
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        load_settings(environment="production", jwt_secret=placeholder)
    flower = secret["stringData"]["ASSESSMENT_STORE_FLOWER_BASIC_AUTH"]
    production = load_settings(
        environment="production", jwt_secret="k" * 40, flower_basic_auth=flower
    )
    with pytest.raises(ConfigurationError, match="FLOWER_BASIC_AUTH"):
        decide(production, address="0.0.0.0")
