"""health, security and compliance run end to end on a real worker against real targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.config import Settings
from assessment_store.demo.targets import (
    API_KEY,
    compliance_server,
    http_server,
    make_certificate,
    tls_server,
)
from tests.acceptance.conftest import environment_for, wait_for
from tests.acceptance.processes import CeleryProcess
from tests.factories import request


def test_all_three_built_in_types_complete_on_a_real_worker(
    producer: AssessmentStore,
    system_settings: Settings,
    start_worker: Callable[..., CeleryProcess],
    tmp_path: Path,
) -> None:
    cert, key, _, _ = make_certificate(tmp_path, names=["localhost"])
    with (
        http_server() as http_port,
        tls_server(cert, key) as tls_port,
        compliance_server() as (compliance_port, calls),
    ):
        env = environment_for(system_settings)
        env["ASSESSMENT_STORE_COMPLIANCE_BASE_URL"] = f"http://127.0.0.1:{compliance_port}"
        env["ASSESSMENT_STORE_COMPLIANCE_API_KEY"] = API_KEY
        start_worker(env=env)
        ids = producer.batch_create_assessments(
            [
                request(assessment_type="health", server_name=f"http://127.0.0.1:{http_port}/"),
                request(assessment_type="security", server_name=f"localhost:{tls_port}"),
                request(assessment_type="compliance", server_name="db1", priority=9),
            ]
        )
        health, security, compliance = wait_for(
            producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60
        )
    assert health.result_data is not None and health.result_data["healthy"] is True
    assert security.result_data is not None
    assert security.result_data["certificate"]["selfSigned"] is True
    assert compliance.result_data is not None
    assert compliance.result_data["report"]["status"] == "compliant"
    assert [c["assessmentId"] for c in calls] == [compliance.assessment_id]
