"""Rendering the dashboard: the Jinja environment, its formatting helpers and the
throughput chart (an inline SVG drawn here, so the page needs no charting script)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from assessment_store.http.auth import Principal, Role
from assessment_store.models import Assessment
from assessment_store.overview import MinuteThroughput, Overview
from assessment_store.states import AssessmentState

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CANCELLABLE = frozenset({AssessmentState.PENDING, AssessmentState.PROCESSING})


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, short: 42s, 7m, 3h, 2d."""
    if moment is None:
        return ""
    seconds = max(0.0, ((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return age(datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(seconds, UTC))


def timestamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def attempts(assessment: Assessment) -> int:
    """Attempts begun so far: the retries, plus the first once it started."""
    return assessment.retry_count + (1 if assessment.started_at is not None else 0)


def last_message(assessment: Assessment) -> str:
    return assessment.error_message or assessment.message or ""


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def actions_for(principal: Principal, assessment: Assessment) -> list[str]:
    """The buttons ``principal`` sees for ``assessment``: admins on any, producers on
    their own, viewers never (the API refuses them too; this only spares them the
    refusal)."""
    if principal.role is Role.VIEWER:
        return []
    if principal.role is Role.PRODUCER and assessment.created_by != principal.subject:
        return []
    found = []
    if assessment.state in CANCELLABLE:
        found.append("cancel")
    if assessment.state is AssessmentState.FAILED:
        found.append("retry")
    return found


def throughput_chart(
    minutes: list[MinuteThroughput], width: int = 600, height: int = 120
) -> Markup:
    """Completed (stacked under failed) per minute, oldest on the left, as SVG."""
    highest = max((m.completed + m.failed for m in minutes), default=0)
    peak = highest or 1  # the scale of an empty chart
    bar = width / max(1, len(minutes))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 16}" role="img" '
        f'aria-label="Finished per minute over the last hour (peak {highest})">'
    ]
    for index, minute in enumerate(minutes):
        x = index * bar
        done_h = height * minute.completed / peak
        fail_h = height * minute.failed / peak
        label = (
            f"{minute.minutes_ago} min ago: {minute.completed} completed, {minute.failed} failed"
        )
        parts.append(f"<g><title>{label}</title>")
        if minute.completed:
            parts.append(
                f'<rect class="bar-completed" x="{x:.1f}" y="{height - done_h:.1f}" '
                f'width="{bar - 1:.1f}" height="{done_h:.1f}"/>'
            )
        if minute.failed:
            parts.append(
                f'<rect class="bar-failed" x="{x:.1f}" y="{height - done_h - fail_h:.1f}" '
                f'width="{bar - 1:.1f}" height="{fail_h:.1f}"/>'
            )
        parts.append("</g>")
    parts.append(
        f'<line class="axis" x1="0" y1="{height}" x2="{width}" y2="{height}"/>'
        f'<text x="0" y="{height + 13}">-60 min</text>'
        f'<text x="{width}" y="{height + 13}" text-anchor="end">now</text>'
        f'<text x="2" y="10">peak {highest}/min</text></svg>'
    )
    return Markup("".join(parts))


def share_bar(parts: list[tuple[str, int]], width: int = 600, height: int = 14) -> Markup:
    """One horizontal bar split in proportion to ``parts`` ((css class, count), in
    order), as SVG: counts by state, or a queue's depth against the deepest."""
    total = sum(count for _, count in parts)
    shapes = [
        f'<svg class="share" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{total} in all">'
    ]
    x = 0.0
    for css, count in parts:
        if count <= 0 or total <= 0:
            continue
        w = width * count / total
        shapes.append(
            f'<rect class="{css}" x="{x:.1f}" y="0" width="{w:.1f}" height="{height}">'
            f"<title>{count}</title></rect>"
        )
        x += w
    shapes.append("</svg>")
    return Markup("".join(shapes))


def state_parts(overview: Overview) -> list[tuple[str, int]]:
    return [(f"fill-{state.value}", overview.counts_by_state[state]) for state in AssessmentState]


def depth_parts(depth: int, depths: dict[str, int]) -> list[tuple[str, int]]:
    """A queue's depth against the deepest queue's."""
    deepest = max(depths.values(), default=0)
    return [("fill-queue", depth), ("fill-none", deepest - depth)]


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    helpers: dict[str, Any] = {
        "age": age,
        "duration": duration,
        "timestamp": timestamp,
        "attempts": attempts,
        "last_message": last_message,
        "pretty_json": pretty_json,
        "actions_for": actions_for,
        "throughput_chart": throughput_chart,
        "share_bar": share_bar,
        "state_parts": state_parts,
        "depth_parts": depth_parts,
        "states": list(AssessmentState),
    }
    env.globals.update(helpers)
    return env


ENVIRONMENT = environment()


def render(template: str, **context: Any) -> str:
    return ENVIRONMENT.get_template(template).render(**context)
