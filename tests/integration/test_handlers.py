"""The built-in handlers against real local targets, run through one attempt in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore, load_settings
from assessment_store.config import Settings
from assessment_store.demo.targets import (
    API_KEY,
    compliance_server,
    http_server,
    make_certificate,
    tls_server,
)
from assessment_store.errors import InvalidInputError
from assessment_store.execution import Outcome, run_attempt
from assessment_store.handlers import compliance
from assessment_store.handlers.security import hostname_matches
from tests.factories import quiet_store, request


def attempt(store: AssessmentStore, **fields: Any) -> tuple[Outcome, Any]:
    return run_existing(store, store.create_assessment(request(**fields)))


def run_existing(store: AssessmentStore, assessment_id: str) -> tuple[Outcome, Any]:
    outcome = run_attempt(store.runtime, assessment_id, "w")
    return outcome, store.get_state(assessment_id)


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_of_a_live_http_server_is_healthy_with_status_and_latency(
    store: AssessmentStore,
) -> None:
    with http_server() as port:
        outcome, got = attempt(
            store,
            assessment_type="health",
            server_name=f"http://127.0.0.1:{port}/",
            options={"includeDetails": True, "deepScan": True},
        )
    assert outcome is Outcome.COMPLETED
    result = got.result_data
    assert result["healthy"] is True and result["tcp"]["reachable"] is True
    assert result["http"]["statusCode"] == 200 and result["http"]["latencyMs"] > 0
    assert result["http"]["headers"]["content-type"] == "text/plain"
    assert result["latency"]["succeeded"] == 5


def test_health_of_a_server_answering_503_is_unhealthy(store: AssessmentStore) -> None:
    with http_server() as port:
        _, got = attempt(
            store, assessment_type="health", server_name=f"http://127.0.0.1:{port}/down"
        )
    assert got.result_data["healthy"] is False
    assert got.result_data["http"]["statusCode"] == 503
    assert "headers" not in got.result_data["http"], "details only when includeDetails"


def test_health_of_a_closed_port_is_a_result_not_a_failure(store: AssessmentStore) -> None:
    outcome, got = attempt(
        store, assessment_type="health", server_name=f"127.0.0.1:{closed_port()}"
    )
    assert outcome is Outcome.COMPLETED
    assert got.result_data["healthy"] is False
    assert "ConnectionRefusedError" in got.result_data["tcp"]["error"]


def test_health_honours_the_server_filter(store: AssessmentStore) -> None:
    _, got = attempt(
        store,
        assessment_type="health",
        server_name="10.9.9.9:22",
        options={"serverFilter": ["db1"]},
    )
    assert got.result_data["skipped"] is True


@pytest.mark.parametrize(
    "server_name", [None, "ftp://x", "host:notaport", "a b:80/path", "evil.com:99999", "a..b"]
)
@pytest.mark.parametrize("assessment_type", ["health", "security"])
def test_a_check_without_a_usable_server_name_is_refused_at_creation(
    store: AssessmentStore, raw_conn: Connection, assessment_type: str, server_name: str | None
) -> None:
    # It could never run: refused up front, naming the field, with nothing written.
    with pytest.raises(InvalidInputError, match=r"^serverName: "):
        store.create_assessment(request(assessment_type=assessment_type, server_name=server_name))
    assert raw_conn.execute(text("SELECT count(*) FROM assessment_states")).scalar_one() == 0


def test_a_stored_health_check_without_a_usable_server_name_fails_permanently(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    # A row from before the creation rule (or written by plain SQL) still ends cleanly.
    assessment_id = store.create_assessment(request(assessment_type="compliance", server_name=None))
    raw_conn.execute(
        text(
            "UPDATE assessment_states SET assessment_type = 'health', "
            'request_data = request_data || \'{"assessmentType": "health"}\' '
            "WHERE assessment_id = :id"
        ),
        {"id": assessment_id},
    )
    raw_conn.commit()
    outcome, got = run_existing(store, assessment_id)
    assert outcome is Outcome.FAILED
    assert got.next_retry_at is None and "serverName" in (got.error_message or "")


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    return tmp_path


def test_security_of_a_self_signed_certificate_reports_it(
    store: AssessmentStore, certificates: Path
) -> None:
    cert, key, _, _ = make_certificate(certificates, names=["localhost", "127.0.0.1"])
    with tls_server(cert, key) as port:
        outcome, got = attempt(store, assessment_type="security", server_name=f"localhost:{port}")
    assert outcome is Outcome.COMPLETED
    result = got.result_data
    assert result["certificate"]["selfSigned"] is True
    assert result["certificate"]["hostnameMatches"] is True
    assert result["certificate"]["trusted"] is False
    assert 85 < result["certificate"]["daysUntilExpiry"] <= 90
    assert result["tls"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert result["tls"]["cipherBits"] >= 128
    assert [f["issue"] for f in result["findings"]] == ["self-signed certificate"]
    assert result["secure"] is False


def test_security_finds_an_expired_certificate_for_another_host(
    store: AssessmentStore, certificates: Path
) -> None:
    ca_cert_path, _, ca_cert, ca_key = make_certificate(certificates, names=["Test CA"])
    cert, key, _, _ = make_certificate(
        certificates, names=["elsewhere.test"], expired=True, issuer=(ca_cert, ca_key)
    )
    with tls_server(cert, key) as port:
        _, got = attempt(store, assessment_type="security", server_name=f"127.0.0.1:{port}")
    issues = [f["issue"] for f in got.result_data["findings"]]
    assert "certificate expired" in issues
    assert "certificate does not match host 127.0.0.1" in issues
    assert any(i.startswith("untrusted certificate") for i in issues)
    assert got.result_data["certificate"]["selfSigned"] is False
    assert ca_cert_path.exists()


def test_security_of_an_unreachable_target_fails_and_will_retry(store: AssessmentStore) -> None:
    outcome, got = attempt(
        store, assessment_type="security", server_name=f"127.0.0.1:{closed_port()}"
    )
    assert outcome is Outcome.FAILED
    assert got.next_retry_at is not None
    assert "TargetUnreachableError" in (got.error_message or "")


@pytest.mark.parametrize(
    ("host", "names", "matches"),
    [
        ("api.example.test", ["*.example.test"], True),
        ("a.b.example.test", ["*.example.test"], False),
        ("example.test", ["*.example.test"], False),
        ("API.Example.Test", ["api.example.test"], True),
    ],
)
def test_hostname_matching_follows_rfc_6125(host: str, names: list[str], matches: bool) -> None:
    assert hostname_matches(host, names, []) is matches


@pytest.fixture
def compliance_store(settings: Settings) -> Iterator[tuple[AssessmentStore, list[Any]]]:
    compliance._breakers.clear()
    with compliance_server() as (port, calls):
        tuned = load_settings(
            database_url=settings.database_url,
            compliance_base_url=f"http://127.0.0.1:{port}",
            compliance_api_key=API_KEY,
            compliance_timeout_seconds=1,
            compliance_breaker_failures=2,
            compliance_breaker_reset_seconds=60,
        )
        store = quiet_store(tuned)
        yield store, calls
        store.close()
    compliance._breakers.clear()


def test_compliance_returns_the_servers_report(
    compliance_store: tuple[AssessmentStore, list[Any]],
) -> None:
    store, calls = compliance_store
    outcome, got = attempt(store, assessment_type="compliance", server_name="db1")
    assert outcome is Outcome.COMPLETED
    assert got.result_data["report"]["status"] == "compliant"
    assert calls[0]["assessmentId"] == got.assessment_id and calls[0]["serverName"] == "db1"


def test_compliance_refusal_is_permanent_and_outage_is_retryable(
    compliance_store: tuple[AssessmentStore, list[Any]],
) -> None:
    store, _ = compliance_store
    _, refused = attempt(store, assessment_type="compliance", server_name="invalid-host")
    assert refused.state is AssessmentState.FAILED and refused.next_retry_at is None
    assert "(422)" in (refused.error_message or "")
    _, broken = attempt(store, assessment_type="compliance", server_name="broken")
    assert broken.next_retry_at is not None and "answered 500" in (broken.error_message or "")


def test_the_circuit_opens_after_repeated_outages_and_fails_fast(
    compliance_store: tuple[AssessmentStore, list[Any]],
) -> None:
    store, calls = compliance_store
    for _ in range(2):
        attempt(store, assessment_type="compliance", server_name="slow")
    before = len(calls)
    _, fast = attempt(store, assessment_type="compliance", server_name="db1")
    assert len(calls) == before, "an open circuit does not call the server"
    assert "circuit open" in (fast.error_message or "") and fast.next_retry_at is not None
