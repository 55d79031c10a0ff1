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
# A metric with label matchers (``name{a="b", c=~"d"}``) and its equality matchers.
SELECTOR = re.compile(r"\b([a-z_:]+)\{([^}]*)\}")
EQUALITY = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
ALERTS = ROOT / "ops/prometheus/alerts.yml"
DASHBOARD = ROOT / "ops/grafana/assessment-store.json"
SCRAPE_CONFIG = ROOT / "ops/prometheus/prometheus.yml"


def exported_body(store: AssessmentStore) -> str:
    """The API's /metrics after some real work, plus this process's own metrics (as a
    worker's endpoint would show them: the workers count claims and completions)."""
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

    return body + generate_latest(REGISTRY).decode()


def exported_series(body: str) -> dict[str, list[dict[str, str]]]:
    """Each sample name in ``body`` with the label sets it has."""
    series: dict[str, list[dict[str, str]]] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, rest = line.partition("{")
            labels = dict(EQUALITY.findall(rest.partition("}")[0])) if rest else {}
            series.setdefault(name.split(" ")[0], []).append(labels)
    return series


def exported_metric_names(store: AssessmentStore) -> set[str]:
    """Every sample name the API's /metrics shows after some real work, plus Flower's."""
    names = set(exported_series(exported_body(store)))
    for source in FLOWER_SOURCE.rglob("*.py"):
        names |= set(re.findall(r"['\"](flower_[a-z_]+)['\"]", source.read_text()))
    return names


def used_metric_names() -> dict[str, set[str]]:
    files = [ALERTS, DASHBOARD]
    return {str(f.relative_to(ROOT)): set(METRIC_NAME.findall(f.read_text())) for f in files}


def alert_rules() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"]}


def expressions() -> list[tuple[str, str]]:
    """Every PromQL expression of the alerts and the dashboard, with where it is."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    found = [(f"alert {name}", rule["expr"]) for name, rule in alert_rules().items()]
    for panel in dashboard["panels"]:
        found += [(f"panel {panel['title']!r}", t["expr"]) for t in panel["targets"]]
    return found


def test_every_label_value_selected_is_one_the_metric_really_has(store: AssessmentStore) -> None:
    series = exported_series(exported_body(store))
    for where, expression in expressions():
        for name, matchers in SELECTOR.findall(expression):
            if not name.startswith("assessmentstore_"):
                continue  # Flower's are checked by name, Prometheus's own ``up`` by job
            wanted = dict(EQUALITY.findall(matchers)).items()
            assert any(wanted <= labels.items() for labels in series.get(name, [])), (
                f"{where}: {name}{{{matchers}}} selects no exported series"
            )


def test_every_scrape_job_an_expression_names_is_configured() -> None:
    jobs = {c["job_name"] for c in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    named = [(where, job) for where, e in expressions() for job in re.findall(r'job="([^"]*)"', e)]
    assert named, "some alert watches a scrape target"
    assert all(job in jobs for _, job in named), (named, jobs)


def test_no_worker_consuming_is_alerted_even_with_flower_down() -> None:
    alerts = alert_rules()
    without_flower = {
        name
        for name, rule in alerts.items()
        if rule["labels"]["severity"] == "critical" and "flower_" not in rule["expr"]
    }
    assert {"AssessmentNoWorkerConsuming", "AssessmentNoWorkerScraped"} <= without_flower
    consuming = alerts["AssessmentNoWorkerConsuming"]["expr"]
    assert "assessmentstore_oldest_pending_age_seconds" in consuming
    assert 'from_state="pending"' in consuming and 'to_state="processing"' in consuming
    assert 'up{job="assessment-store-workers"}' in alerts["AssessmentNoWorkerScraped"]["expr"]


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
