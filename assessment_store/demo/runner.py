"""The demo: a whole system on this machine, a mixed batch, and its flow to completion.

It migrates the configured database, starts local targets (HTTP, TLS and a stand-in
compliance server), Celery workers (one per priority band and a shared one), beat, the
API and Flower as child processes, submits a mixed
batch (all three types, all priorities, failures that retry, a permanent failure,
one assessment cancelled while it runs), shows a live table until every assessment
is finished, prints a summary, and shuts the children down.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from assessment_store.cli.output import styled_state
from assessment_store.config import ENV_PREFIX, Settings, get_settings, load_settings
from assessment_store.db import migrate
from assessment_store.demo import targets
from assessment_store.demo.processes import (
    CELERY,
    ChildProcess,
    api_server,
    celery_beat,
    celery_worker,
    child_environment,
    free_port,
)
from assessment_store.http.auth import Role, issue_token
from assessment_store.models import Assessment, AssessmentRequest
from assessment_store.percentiles import percentile
from assessment_store.queues import ASSESSMENT_QUEUES, queue_list
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

# Short intervals so that retries and rescue happen while you watch.
DEMO_TUNING = {
    "maintenance_interval_seconds": 1.0,
    "retry_backoff_seconds": 1.0,
    "retry_backoff_max_seconds": 4.0,
    "lease_seconds": 10.0,
    "redispatch_after_seconds": 10.0,
}
LIVE_ROWS = 16


@dataclass
class DemoPlan:
    """The batch to submit and the one to cancel while it runs."""

    requests: list[AssessmentRequest]
    cancel_index: int
    notes: dict[int, str] = field(default_factory=dict)


def plan_batch(http_port: int, tls_port: int, rounds: int) -> DemoPlan:
    """A mixed batch: every type, every priority, retries, a permanent failure."""
    requests: list[AssessmentRequest] = []
    notes: dict[int, str] = {}

    def add(note: str, **fields: object) -> None:
        notes[len(requests)] = note
        requests.append(AssessmentRequest.model_validate(fields))

    for round_ in range(rounds):
        base = round_ * 3
        add(
            "live web server",
            assessmentType="health",
            serverName=f"http://127.0.0.1:{http_port}/",
            priority=10 - base % 10,
            options={"includeDetails": True},
        )
        add(
            "server answering 503",
            assessmentType="health",
            serverName=f"http://127.0.0.1:{http_port}/down",
            priority=(6 + base) % 10 + 1,
        )
        add(
            "TCP port probe",
            assessmentType="health",
            serverName=f"127.0.0.1:{http_port}",
            priority=(2 + base) % 10 + 1,
            options={"deepScan": True},
        )
        add(
            "self-signed TLS",
            assessmentType="security",
            serverName=f"localhost:{tls_port}",
            priority=(7 + base) % 10 + 1,
        )
        add(
            "TLS name mismatch",
            assessmentType="security",
            serverName=f"127.0.0.1:{tls_port}",
            priority=(4 + base) % 10 + 1,
        )
        add(
            "compliant server",
            assessmentType="compliance",
            serverName=f"db{round_}",
            priority=(8 + base) % 10 + 1,
            source="compliance",
        )
        add(
            "fails once, then retries",
            assessmentType="compliance",
            serverName=f"flaky-db{round_}",
            priority=(5 + base) % 10 + 1,
            source="compliance",
        )
    add(
        "refused: permanent failure",
        assessmentType="compliance",
        serverName="invalid-db",
        priority=3,
        source="compliance",
    )
    cancel_index = len(requests)
    add(
        "cancelled while running",
        assessmentType="health",
        serverName=f"http://127.0.0.1:{http_port}/slow",
        priority=9,
    )
    return DemoPlan(requests, cancel_index, notes)


def live_view(states: list[Assessment], notes: dict[str, str], started: float) -> Group:
    """Counts by state, then one compact row per assessment, unfinished first."""
    counts = Counter(s.state.value for s in states)
    summary = Table.grid(padding=(0, 2))
    summary.add_row(
        *(f"{styled_state(state.value)} {counts.get(state.value, 0)}" for state in AssessmentState),
        f"elapsed {time.monotonic() - started:5.1f}s",
    )
    rows = Table(box=None, pad_edge=False)
    for column in ("id", "type", "prio", "state", "prog", "try", "what"):
        rows.add_column(column, no_wrap=True)
    for s in sorted(states, key=lambda s: (s.is_finished, -s.priority))[:LIVE_ROWS]:
        rows.add_row(
            s.assessment_id[:8],
            s.assessment_type,
            str(s.priority),
            styled_state(s.state.value),
            f"{s.progress:3d}%",
            str(s.retry_count + 1),
            notes.get(s.assessment_id, ""),
        )
    return Group(summary, rows)


def summary_table(states: list[Assessment], wall_seconds: float) -> Table:
    completed = [s for s in states if s.state is AssessmentState.COMPLETED]
    latencies = [
        (s.completed_at - s.created_at).total_seconds() for s in completed if s.completed_at
    ]
    table = Table(title="demo summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    counts = Counter(s.state.value for s in states)
    table.add_row("assessments", str(len(states)))
    table.add_row("by state", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    table.add_row("retried", str(sum(1 for s in states if s.retry_count)))
    table.add_row("wall time", f"{wall_seconds:.1f}s")
    table.add_row("throughput", f"{len(completed) / wall_seconds:.2f} completed/s")
    if latencies:
        table.add_row(
            "latency (created -> completed)",
            f"p50 {percentile(latencies, 50):.2f}s, p95 {percentile(latencies, 95):.2f}s, "
            f"max {max(latencies):.2f}s",
        )
    return table


@dataclass(frozen=True)
class Endpoints:
    """Where the demo's API and Flower listen, and how to get in."""

    api_port: int
    flower_port: int
    jwt_secret: str
    flower_password: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"


@contextmanager
def running_system(
    settings: Settings, log_dir: Path, compliance_port: int, endpoints: Endpoints
) -> Iterator[None]:
    """A worker per priority band plus a shared one, beat, the API and Flower as
    children, stopped cleanly (warm shutdown) on the way out."""
    env = child_environment(
        settings,
        {
            f"{ENV_PREFIX}COMPLIANCE_BASE_URL": f"http://127.0.0.1:{compliance_port}",
            f"{ENV_PREFIX}COMPLIANCE_API_KEY": targets.API_KEY,
            f"{ENV_PREFIX}JWT_SECRET": endpoints.jwt_secret,
            f"{ENV_PREFIX}WORKER_METRICS_PORT": "0",
            # The demo's Flower shows every task, not only the workers.
            f"{ENV_PREFIX}TASK_EVENTS": "true",
        },
    )
    children = [
        *(
            celery_worker(
                f"worker-{queue.rpartition('.')[2]}", env, log_dir, queues=queue, concurrency=1
            )
            for queue in ASSESSMENT_QUEUES
        ),
        celery_worker("worker-shared", env, log_dir, queues=queue_list(), concurrency=2),
        celery_beat("beat", env, log_dir),
        api_server("api", env, log_dir, endpoints.api_port),
        ChildProcess(
            "flower",
            [
                *CELERY,
                "flower",
                "--address=127.0.0.1",
                f"--port={endpoints.flower_port}",
            ],
            # Credentials through the environment, never on a command line (ps shows it);
            # workers.flower_guard hands them to Flower.
            {**env, f"{ENV_PREFIX}FLOWER_BASIC_AUTH": f"demo:{endpoints.flower_password}"},
            log_dir,
            ready_marker="Visit me at",
        ),
    ]
    try:
        for child in children:
            child.start()
        for child in children:
            child.wait_ready()
        yield
    finally:
        for child in reversed(children):
            child.stop()


def wait_for_open_dashboard(api_url: str) -> None:
    """Until the API serves a live dashboard stream (its /metrics gauge says so)."""
    while True:
        try:
            body = httpx.get(f"{api_url}/metrics", timeout=5).text
        except httpx.HTTPError:
            body = ""
        for line in body.splitlines():
            if line.startswith("assessmentstore_dashboard_streams ") and float(line.split()[1]):
                return
        time.sleep(0.2)


def run_demo(
    *,
    rounds: int,
    keep_running: bool,
    timeout: float,
    console: Console,
    wait_for_dashboard: bool = False,
) -> int:
    """The ``assessment-store demo`` command; returns the exit code."""
    base = get_settings()
    settings = load_settings(**{**base.model_dump(), **DEMO_TUNING})
    console.print(
        f"[bold]database[/] {settings.database_url}\n[bold]broker[/]   "
        f"{settings.effective_broker_url}"
    )
    if migrate.ensure_database(settings.database_url):
        console.print("created the database")
    migrate.upgrade(settings.database_url)
    console.print("schema migrated to head")
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="as-demo-")))
        cert, key, _, _ = targets.make_certificate(work_dir, names=["localhost"])
        http_port = stack.enter_context(targets.http_server())
        tls_port = stack.enter_context(targets.tls_server(cert, key))
        compliance_port, _calls = stack.enter_context(targets.compliance_server())
        log_dir = Path(os.environ.get("ASSESSMENT_STORE_DEMO_LOGS", work_dir))
        console.print(f"child logs in {log_dir}")
        endpoints = Endpoints(
            api_port=free_port(8000),
            flower_port=free_port(5555),
            jwt_secret=secrets.token_urlsafe(32),
            flower_password=secrets.token_urlsafe(8),
        )
        with console.status("starting workers (one per band, one shared), beat, API, Flower"):
            stack.enter_context(running_system(settings, log_dir, compliance_port, endpoints))
        store = AssessmentStore(settings, application_name="assessment-store-demo")
        stack.callback(store.close)
        token = issue_token(endpoints.jwt_secret, "demo", Role.ADMIN, timedelta(hours=8))
        console.print(f"dashboard: {endpoints.api_url}/ui (sign in with the token below)")
        console.print(f"token:     {token}", soft_wrap=True)
        if wait_for_dashboard:
            with console.status(f"waiting for a dashboard to open {endpoints.api_url}/ui"):
                wait_for_open_dashboard(endpoints.api_url)
        plan = plan_batch(http_port, tls_port, rounds)
        started = time.monotonic()
        ids = store.batch_create_assessments(plan.requests, created_by="demo")
        console.print(f"submitted {len(ids)} assessments in one transaction")
        cancel_id = ids[plan.cancel_index]
        notes = {ids[index]: note for index, note in plan.notes.items()}
        cancelled = False
        deadline = started + timeout
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                states = [store.get_state(i) for i in ids]
                live.update(live_view(states, notes, started))
                by_id = {s.assessment_id: s for s in states}
                if not cancelled and by_id[cancel_id].state is AssessmentState.PROCESSING:
                    store.cancel_assessment(
                        cancel_id, "demo: cancelled while running", changed_by="demo"
                    )
                    cancelled = True
                if all(s.is_finished for s in states):
                    break
                if time.monotonic() > deadline:
                    console.print(f"[red]not finished after {timeout:g}s[/]; see {log_dir}")
                    return 1
                time.sleep(0.25)
        wall = time.monotonic() - started
        console.print(summary_table(states, wall))
        retried = next((s.assessment_id for s in states if s.retry_count), ids[0])
        console.print(f"API docs:  {endpoints.api_url}/docs")
        console.print(f"dashboard: {endpoints.api_url}/ui")
        console.print(
            f"Flower:    {endpoints.flower_url} (user demo, password {endpoints.flower_password})"
        )
        console.print(f"token:     {token}", soft_wrap=True)
        console.print(
            f"try:       curl -H 'Authorization: Bearer <token>' "
            f"{endpoints.api_url}/v1/assessments/{retried}/audit"
        )
        console.print(f"       or: assessment-store audit {retried}")
        if keep_running:
            console.print("system left running; press Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        with console.status("stopping the worker and beat"):
            stack.close()
    console.print("demo finished cleanly")
    return 0
