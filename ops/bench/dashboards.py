"""Dashboards: many open live pages (``GET /ui/events``) on one API process while
changes commit.

The bench process opens ``streams`` server-sent-event streams with the session cookie
(raw asyncio sockets: a thin client, so the latency measured is the server's, not an
HTTP library's), then commits changes itself (an AssessmentStore with NullDispatcher,
no worker) and notes when each one committed; every stream notes when each
(assessment, version) arrived. Figures: commit-to-receipt latency over every stream
and change (paced, then one burst of completions), deliveries expected and received,
the API's database connections (before, idle with every stream open, at peak) and its
memory and CPU; on a full run, the on-screen latency of a real browser page as well.

The connections "before" are counted once the pool has its working size: a wave of
as many streams as the pool may grow to is opened at once and closed first (each
stream's replay borrows a connection for a moment, and the pool keeps up to its size
idle afterwards), so what the D streams add on top is what they hold.

A stream gets an assessment's current row, so two changes the feed read in one batch
arrive as the later version only: a change counts as delivered when its version or a
later one arrived, at the time the first of those did (``superseded`` says how many).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg2
from sqlalchemy import make_url

from assessment_store import AssessmentRequest, AssessmentStore
from assessment_store.config import Settings
from assessment_store.dispatch import NullDispatcher
from assessment_store.http.auth import Role, issue_token
from assessment_store.http.ui.session import SESSION_COOKIE
from assessment_store.percentiles import percentile
from ops.bench.common import libpq
from ops.bench.sections import SECRET, _api

CHROMIUM = Path("/usr/bin/chromium")
PACE_PER_SECOND = 40.0  # changes a second in the paced phases: latency, not backlog
BROWSER_CHANGES = 30
BROWSER_PACE_PER_SECOND = 10.0
DELIVERY_TIMEOUT = 30.0  # seconds for every stream to have a phase's last changes
CONNECT_TIMEOUT = 60.0
SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Change:
    assessment_id: str
    version: int
    called: float  # time.time() before the call
    committed: float  # time.time() once it returned (the commit is inside the call)
    phase: str


@dataclass
class Stream:
    """One open /ui/events: when each (assessment, version) first arrived."""

    index: int
    retry: bool = False
    connected: bool = False  # the first message after the replay arrived
    ended: str | None = None  # why the server ended it (reload, signed-out, closed)
    overviews: int = 0
    messages: int = 0
    arrived: dict[tuple[str, int], float] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)

    def handle(self, event: bytes, now: float) -> None:
        """One event (the text between blank lines) that arrived at ``now``."""
        if event.startswith(b"retry:"):
            self.retry = True  # the stream's first line: subscribed, replay next
            return
        if event.startswith(b":"):
            return  # keep-alive comment
        kind, data = "message", ""
        for line in event.decode().split("\n"):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].lstrip(" ")
        self.connected = True  # the replay's message (or bare id) came
        self.messages += 1
        if kind == "changes":
            for row in json.loads(data).get("rows", []):
                key = (row["assessmentId"], int(row["version"]))
                self.arrived.setdefault(key, now)
                if key[1] > self.latest.get(key[0], 0):
                    self.latest[key[0]] = key[1]
        elif kind == "overview":
            self.overviews += 1
        elif kind in ("reload", "signed-out"):
            self.ended = kind

    def has(self, final: dict[str, int]) -> bool:
        return all(self.latest.get(i, 0) >= v for i, v in final.items())


async def _read_stream(
    stream: Stream, host: str, port: int, path: str, cookie: str, stop: asyncio.Event
) -> None:
    """GET ``path`` as EventSource does and feed each event to ``stream`` until ``stop``."""
    reader, writer = await asyncio.open_connection(host, port, limit=2**22)
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\nCookie: {SESSION_COOKIE}={cookie}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = await reader.readline()
        headers = (await reader.readuntil(b"\r\n\r\n")).lower()
        if b" 200 " not in status or b"transfer-encoding: chunked" not in headers:
            stream.ended = f"refused: {status.decode().strip()}"
            return
        buffer = b""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                line = asyncio.ensure_future(reader.readline())
                done, _ = await asyncio.wait({line, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    line.cancel()
                    return
                size = int(line.result().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    stream.ended = stream.ended or "closed by the server"
                    return
                buffer += (await reader.readexactly(size + 2))[:-2]
                now = time.time()
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    stream.handle(event, now)
        finally:
            stopping.cancel()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        stream.ended = f"broken: {exc!r}"
    finally:
        writer.close()


class ApiProbe:
    """The API process's database connections (pg_stat_activity rows whose client
    port is one of the process's sockets) and its memory, sampled in a thread."""

    def __init__(self, pid: int, url: str) -> None:
        self.process = psutil.Process(pid)
        parsed = make_url(url)
        self.db_port = parsed.port or 5432
        self.conn = psycopg2.connect(libpq(url), application_name="bench-probe")
        self.conn.autocommit = True
        self.samples: list[tuple[float, int, float]] = []  # (time, connections, RSS MB)
        self._lock = threading.Lock()

    def connections(self) -> dict[str, int]:
        """The API's connections by application name."""
        ports = [
            c.laddr.port
            for c in self.process.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == self.db_port and c.status == psutil.CONN_ESTABLISHED
        ]
        with self._lock, self.conn.cursor() as cur:
            cur.execute(
                "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND client_port = ANY(%s) GROUP BY 1",
                (ports,),
            )
            return {str(name): int(n) for name, n in cur.fetchall()}

    def stream_sockets(self, port: int) -> int:
        """Connections the API process holds open on its own ``port`` (the streams)."""
        return sum(
            1
            for c in self.process.net_connections(kind="tcp")
            if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )

    def count(self) -> int:
        return sum(self.connections().values())

    def rss_mb(self) -> float:
        return round(float(self.process.memory_info().rss) / 2**20, 1)

    @contextmanager
    def sampling(self) -> Iterator[list[tuple[float, int, float]]]:
        """Sample every SAMPLE_SECONDS while the block runs; yields this block's samples."""
        mine: list[tuple[float, int, float]] = []
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                sample = (time.monotonic(), self.count(), self.rss_mb())
                mine.append(sample)
                stop.wait(SAMPLE_SECONDS)

        thread = threading.Thread(target=run, name="bench-probe", daemon=True)
        thread.start()
        try:
            yield mine
        finally:
            stop.set()
            thread.join()
            mine.append((time.monotonic(), self.count(), self.rss_mb()))
            self.samples += mine

    def close(self) -> None:
        self.conn.close()


class Changes:
    """Commits changes from the bench process and notes when each committed."""

    def __init__(self, store: AssessmentStore) -> None:
        self.store = store
        self.log: list[Change] = []

    def _note(self, phase: str, call: Callable[[], tuple[str, int]]) -> None:
        called = time.time()
        assessment_id, version = call()
        self.log.append(Change(assessment_id, version, called, time.time(), phase))

    def create(self, phase: str) -> str:
        def call() -> tuple[str, int]:
            request = AssessmentRequest(assessment_type="health", server_name="127.0.0.1")
            return self.store.create_assessment(request, created_by="bench"), 1

        self._note(phase, call)
        return self.log[-1].assessment_id

    def start(self, phase: str, assessment_id: str) -> None:
        self._note(
            phase,
            lambda: (
                assessment_id,
                self.store.start_processing(assessment_id, "bench-worker").version,
            ),
        )

    def progress(self, phase: str, assessment_id: str) -> None:
        self._note(
            phase,
            lambda: (
                assessment_id,
                self.store.update_progress(assessment_id, 50, "halfway").version,
            ),
        )

    def complete(self, phase: str, assessment_id: str) -> None:
        self._note(
            phase,
            lambda: (
                assessment_id,
                self.store.complete_assessment(assessment_id, {"ok": True}).version,
            ),
        )

    def final(self, phase: str) -> dict[str, int]:
        """Each assessment's last version committed in ``phase``."""
        out: dict[str, int] = {}
        for c in self.log:
            if c.phase == phase:
                out[c.assessment_id] = max(c.version, out.get(c.assessment_id, 0))
        return out


def _paced(steps: list[Callable[[], None]], per_second: float) -> None:
    """Run ``steps`` at ``per_second``, on a schedule (a slow step is not made up for
    by bunching the next ones)."""
    started = time.monotonic()
    for number, step in enumerate(steps):
        due = started + number / per_second
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        step()


def paced_lifecycles(changes: Changes, count: int, per_second: float) -> None:
    """``count`` assessments created one at a time, then each started, given progress
    and completed: four changes each, paced."""
    ids: list[str] = []
    _paced([partial(_append, ids, changes.create, "paced") for _ in range(count)], per_second)
    for act in (changes.start, changes.progress, changes.complete):
        _paced([partial(act, "paced", i) for i in ids], per_second)


def _append(ids: list[str], create: Callable[[str], str], phase: str) -> None:
    ids.append(create(phase))


def _nth(act: Callable[[str, str], None], phase: str, ids: list[str], n: int) -> None:
    act(phase, ids[n])  # ids[n] is created by an earlier step


def burst_setup(changes: Changes, count: int) -> list[str]:
    """``count`` assessments created in one batch and started: ready to complete."""
    called = time.time()
    ids = changes.store.batch_create_assessments(
        [
            AssessmentRequest(assessment_type="health", server_name="127.0.0.1")
            for _ in range(count)
        ],
        created_by="bench",
    )
    committed = time.time()
    changes.log += [Change(i, 1, called, committed, "setup") for i in ids]
    for assessment_id in ids:
        changes.start("setup", assessment_id)
    return ids


def burst(changes: Changes, ids: list[str]) -> None:
    for assessment_id in ids:
        changes.complete("burst", assessment_id)


@dataclass
class Delivery:
    expected: int = 0
    received: int = 0
    superseded: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def deliveries(streams: list[Stream], log: list[Change], phases: set[str]) -> Delivery:
    """Every change of ``phases`` at every stream: when its version (or a later one of
    the same assessment) first arrived, after the commit."""
    result = Delivery()
    wanted = [c for c in log if c.phase in phases]
    for stream in streams:
        by_id: dict[str, list[tuple[int, float]]] = {}
        for (assessment_id, version), at in stream.arrived.items():
            by_id.setdefault(assessment_id, []).append((version, at))
        for change in wanted:
            later = [
                (v, at) for v, at in by_id.get(change.assessment_id, ()) if v >= change.version
            ]
            result.expected += 1
            if not later:
                continue
            result.received += 1
            if all(v != change.version for v, _ in later):
                result.superseded += 1
            result.latencies_ms.append((min(at for _, at in later) - change.committed) * 1000)
    return result


def latency_summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}
    return {
        "p50_ms": round(percentile(samples, 50), 1),
        "p95_ms": round(percentile(samples, 95), 1),
        "p99_ms": round(percentile(samples, 99), 1),
        "max_ms": round(max(samples), 1),
        "samples": len(samples),
    }


def _delivery_figures(d: Delivery) -> dict[str, Any]:
    return {
        "expected": d.expected,
        "received": d.received,
        "superseded": d.superseded,
        "latency": latency_summary(d.latencies_ms),
    }


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _delivered(streams: list[Stream], final: dict[str, int]) -> bool:
    """Wait until every stream has each assessment's ``final`` version (or later), or
    has ended (what it missed is counted as missing)."""
    return await _until(
        lambda: all(s.ended is not None or s.has(final) for s in streams), DELIVERY_TIMEOUT
    )


async def _loop_lag(samples: list[float], every: float = 0.05) -> None:
    """How late this event loop (the streams' reader) runs a timer: when it is late,
    arrivals are noted late too, and the latency is partly the bench's own."""
    while True:
        due = time.monotonic() + every
        await asyncio.sleep(every)
        samples.append(max(0.0, time.monotonic() - due) * 1000)


@dataclass
class Opened:
    streams: list[Stream]
    readers: list[asyncio.Task[None]]
    stop: asyncio.Event
    seconds: float
    timed_out: bool

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.readers)


async def open_streams(base: str, path: str, token: str, count: int) -> Opened:
    """``count`` streams opened at once (as pages do after the API restarts), once each
    has had its replay's message."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    streams = [Stream(n) for n in range(count)]
    stop = asyncio.Event()
    started = time.monotonic()
    readers = [asyncio.create_task(_read_stream(s, host, port, path, token, stop)) for s in streams]
    connected = await _until(lambda: all(s.connected or s.ended for s in streams), CONNECT_TIMEOUT)
    return Opened(streams, readers, stop, time.monotonic() - started, not connected)


def live_path(base: str, token: str) -> str:
    """The list page's live URL (its ``data-live``: the position it rendered at)."""
    response = httpx.get(
        base + "/ui", cookies={SESSION_COOKIE: token}, timeout=30, follow_redirects=False
    )
    response.raise_for_status()
    found = re.search(r'id="assessments"[^>]*data-live="([^"]+)"', response.text)
    if found is None:
        raise RuntimeError("the list page has no data-live section")
    return html.unescape(found.group(1))


BROWSER_OBSERVER = """
() => {
  window.__seen = {};
  const note = (el) => {
    if (el.nodeType !== 1 || !el.matches("tr[data-assessment-id]")) return;
    const key = el.dataset.assessmentId + " " + el.dataset.version;
    if (!(key in window.__seen)) window.__seen[key] = performance.timeOrigin + performance.now();
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "childList") m.addedNodes.forEach(note);
      else note(m.target);
    }
  }).observe(document.getElementById("rows"),
             {childList: true, subtree: true, attributes: true, attributeFilter: ["data-version"]});
}
"""


def browser_latency(base: str, token: str, changes: Changes, count: int) -> dict[str, Any]:
    """The list page in headless Chromium: from each change's commit until its row is
    in the page's DOM (a MutationObserver's clock, the same machine's)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            context = browser.new_context()
            context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": base}])
            page = context.new_page()
            page.goto(base + "/ui")
            page.wait_for_selector("#live-status[data-status=live]", timeout=30_000)
            page.evaluate(BROWSER_OBSERVER)
            first = len(changes.log)
            ids: list[str] = []
            steps: list[Callable[[], None]] = [
                partial(_append, ids, changes.create, "browser") for _ in range(count // 3)
            ]
            for n in range(count // 3):
                steps.append(partial(_nth, changes.start, "browser", ids, n))
                steps.append(partial(_nth, changes.complete, "browser", ids, n))
            _paced(steps, BROWSER_PACE_PER_SECOND)
            made = changes.log[first:]
            final = changes.final("browser")
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            seen: dict[str, float] = {}
            while time.monotonic() < deadline:
                seen = page.evaluate("() => window.__seen")
                latest: dict[str, int] = {}
                for key in seen:
                    i, v = key.rsplit(" ", 1)
                    latest[i] = max(latest.get(i, 0), int(v))
                if all(latest.get(i, 0) >= v for i, v in final.items()):
                    break
                page.wait_for_timeout(20)
        finally:
            browser.close()
    samples: list[float] = []
    for change in made:
        shown = [
            at
            for key, at in seen.items()
            if key.rsplit(" ", 1)[0] == change.assessment_id
            and int(key.rsplit(" ", 1)[1]) >= change.version
        ]
        if shown:
            samples.append(min(shown) - change.committed * 1000)
    summary = latency_summary(samples)
    return {
        "changes": len(made),
        "shown": len(samples),
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "max_ms": summary["max_ms"],
    }


def browser_skipped(quick: bool) -> str | None:
    """Why the browser measure does not run, or None when it does."""
    if quick:
        return "skipped: --quick"
    if not CHROMIUM.exists():
        return "skipped: no chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "skipped: playwright not installed"
    return None


def dashboards(
    settings: Settings, logs: Path, *, streams: int, assessments: int, quick: bool
) -> dict[str, Any]:
    """``streams`` live list pages on one API process while ``assessments`` assessments
    go through their life one change at a time (paced) and as many complete at once."""
    api, base = _api("api-dashboards", settings, logs, cache_enabled=False)
    assert api.process is not None
    token = issue_token(SECRET, "bench-admin", Role.ADMIN, timedelta(hours=1))
    store = AssessmentStore(settings, dispatcher=NullDispatcher(), application_name="bench")
    probe = ApiProbe(api.process.pid, settings.database_url)
    skipped = browser_skipped(quick)
    warm_up = min(streams, settings.database_pool_size + settings.database_max_overflow)
    try:
        return asyncio.run(
            _measure(base, token, store, probe, streams, assessments, skipped, warm_up)
        ) | {
            "database_pool_size": settings.database_pool_size,
            "database_max_overflow": settings.database_max_overflow,
        }
    finally:
        probe.close()
        store.close()
        api.stop()


async def _measure(
    base: str,
    token: str,
    store: AssessmentStore,
    probe: ApiProbe,
    count: int,
    assessments: int,
    skipped: str | None,
    warm_up: int,
) -> dict[str, Any]:
    path = await asyncio.to_thread(live_path, base, token)
    api_port = urlsplit(base).port or 80
    cold = await asyncio.to_thread(probe.connections)
    # A first wave as large as the pool may grow, opened at once and closed: each
    # stream's replay borrows a pooled connection for a moment, and the pool then
    # keeps up to its size idle. What stays after that is the working set; what the
    # D streams add on top of it is what they hold.
    warm = await open_streams(base, path, token, warm_up)
    await warm.close()
    await _until(lambda: probe.stream_sockets(api_port) == 0, DELIVERY_TIMEOUT)
    before = await asyncio.to_thread(probe.connections)
    rss_before = probe.rss_mb()
    changes = Changes(store)
    figures: dict[str, Any] = {"streams": count, "assessments": assessments}
    with probe.sampling() as connecting:
        opened = await open_streams(base, path, token, count)
    streams = opened.streams
    figures["connect_seconds"] = round(opened.seconds, 2)
    figures["streams_connected"] = sum(s.connected and s.ended is None for s in streams)
    if opened.timed_out:
        figures["connect_timed_out"] = True
    idle = await asyncio.to_thread(probe.connections)
    rss_idle = probe.rss_mb()
    cpu_before = probe.process.cpu_times()
    messages_before = sum(s.messages for s in streams)
    timed: dict[str, float] = {}
    lag: list[float] = []
    ticker = asyncio.create_task(_loop_lag(lag))
    with probe.sampling() as flowing:
        started = time.monotonic()
        await asyncio.to_thread(paced_lifecycles, changes, assessments, PACE_PER_SECOND)
        await _delivered(streams, changes.final("paced"))
        timed["paced"] = time.monotonic() - started
        ids = await asyncio.to_thread(burst_setup, changes, assessments)
        await _delivered(streams, changes.final("setup"))
        started = time.monotonic()
        await asyncio.to_thread(burst, changes, ids)
        commits = time.monotonic() - started
        await _delivered(streams, changes.final("burst"))
        timed["burst"] = time.monotonic() - started
        figures["browser"] = skipped
        if skipped is None:
            try:
                figures["browser"] = await asyncio.to_thread(
                    browser_latency, base, token, changes, BROWSER_CHANGES
                )
            except Exception as exc:  # a target's measure: reported, the run goes on
                figures["browser"] = f"failed: {exc!r}"[:300]
            await _delivered(streams, changes.final("browser"))
    ticker.cancel()
    cpu_after = probe.process.cpu_times()
    busy = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    sent = sum(s.messages for s in streams) - messages_before
    await opened.close()
    started = time.monotonic()
    closed = await _until(lambda: probe.stream_sockets(api_port) == 0, DELIVERY_TIMEOUT)
    figures["server_closed_streams_seconds"] = (
        round(time.monotonic() - started, 2) if closed else None
    )
    after = await asyncio.to_thread(probe.connections)
    all_phases = {"paced", "setup", "burst", "browser"}
    total = deliveries(streams, changes.log, all_phases)
    connecting_peak = max(n for _, n, _ in connecting)
    flowing_peak = max(n for _, n, _ in flowing)
    figures |= {
        "changes": len(changes.log),
        "changes_per_phase": {
            phase: sum(c.phase == phase for c in changes.log) for phase in sorted(all_phases)
        },
        "pace_per_second": PACE_PER_SECOND,
        "browser_pace_per_second": BROWSER_PACE_PER_SECOND,
        "deliveries_expected": total.expected,
        "deliveries_received": total.received,
        "deliveries_superseded": total.superseded,
        "paced": _delivery_figures(deliveries(streams, changes.log, {"paced"})),
        "burst": _delivery_figures(deliveries(streams, changes.log, {"burst"}))
        | {"commit_seconds": round(commits, 2)},
        # The browser's changes come at BROWSER_PACE_PER_SECOND and reach every stream too.
        "paced_slower": _delivery_figures(deliveries(streams, changes.log, {"browser"}))
        if any(c.phase == "browser" for c in changes.log)
        else None,
        "streams_ended_early": sorted({s.ended for s in streams if s.ended}),
        "overview_messages_per_stream": round(sum(s.overviews for s in streams) / count, 1),
        "api_database_connections": {
            "cold": sum(cold.values()),
            "warm_up_streams": warm_up,
            "before": sum(before.values()),
            "before_by_name": before,
            "connecting_peak": connecting_peak,
            "idle_with_streams": sum(idle.values()),
            "idle_by_name": idle,
            "peak_with_changes": flowing_peak,
            "peak": max(connecting_peak, flowing_peak, sum(idle.values())),
            "after_streams_closed": sum(after.values()),
        },
        "api_rss_mb": {
            "before": rss_before,
            "idle_with_streams": rss_idle,
            "peak": max(mb for _, _, mb in probe.samples),
        },
        "api_cpu_seconds_while_changes_flowed": round(busy, 2),
        "stream_messages_while_changes_flowed": sent,
        "api_cpu_us_per_stream_message": round(busy / sent * 1e6, 1) if sent else None,
        "bench_loop_lag_ms": latency_summary(lag),
        "phase_seconds": {k: round(v, 2) for k, v in timed.items()},
    }
    return figures
