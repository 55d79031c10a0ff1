"""``assessment-store import`` against generated bad files.

Whatever a bad line holds (random text or bytes, invalid UTF-8, a broken audit chain,
a wrong type, a huge value), the import exits 2, names every bad line by number and
no good one, one line each, writes nothing (plain SQL count) and shows no traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from assessment_store.models import AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.transfer import export_lines
from tests.factories import failed, processing, request
from tests.integration.conftest import cli
from tests.integration.test_cli_input import count_rows

Line = dict[str, Any]
MAX_LINES = 5
INT4_MAX = 2**31 - 1


def exported(store: AssessmentStore, raw_engine: Engine) -> list[Line]:
    """Good lines, one per state, then an empty database to import them into."""
    store.create_assessment(request())
    done = processing(store)
    store.complete_assessment(done.assessment_id, {"ok": True})
    failed(store)
    store.cancel_assessment(processing(store).assessment_id, "no")
    processing(store)
    lines = [json.loads(line) for line in export_lines(store, AssessmentFilters())]
    with raw_engine.begin() as conn:
        conn.execute(text("DELETE FROM assessment_states"))
    return lines


# Each makes a line bad, whatever line it is given: wrong types (never one that lax
# parsing would accept, like "1" for an int), huge values, broken chains, bad text.
WRONG_VALUES: dict[str, list[object]] = {
    "assessmentId": [7, None, "", "x" * 300, "a/b", "a\u0000b"],
    "state": ["paused", 7, None],
    "version": ["one", 1.5, [], None, 0],
    "progress": ["half", 2.5, {}, 101, -1, 10**30],
    "priority": ["high", 0, 11],
    "retryCount": ["none", [], -1, INT4_MAX + 1, 10**40],
    "createdAt": ["yesterday", [], None, "2025-01-31T00:00:00"],  # the last: no timezone
    "updatedAt": ["2025-01-31T00:00:00"],
    "requestData": [5, "x", None, {}],
    "resultData": [7, "x", {"text": "a\u0000b"}, {"text": "\ud800"}],
    "auditTrail": ["none", {}, [], None],
    "createdBy": [5, None],
    "bogusField": [1],
}


def wrong_value(draw: st.DrawFn, line: Line) -> Line:
    field = draw(st.sampled_from(sorted(WRONG_VALUES)))
    return {**line, field: draw(st.sampled_from(WRONG_VALUES[field]))}


def broken_chain(draw: st.DrawFn, line: Line) -> Line:
    trail = [dict(entry) for entry in line["auditTrail"]]
    how = draw(st.sampled_from(["drop first", "bump last", "first not pending", "bad event"]))
    if how == "drop first":
        trail = trail[1:]
    elif how == "bump last":
        trail[-1]["versionTo"] += 1
    elif how == "first not pending":
        trail[0]["newState"] = "completed"
    else:
        trail[draw(st.integers(0, len(trail) - 1))]["event"] = "teleport"
    return {**line, "auditTrail": trail}


def huge_entry_version(draw: st.DrawFn, line: Line) -> Line:
    trail = [dict(entry) for entry in line["auditTrail"]]
    trail[-1]["versionTo"] = draw(st.sampled_from([INT4_MAX + 1, 10**30]))
    return {**line, "auditTrail": trail}


MUTATIONS: list[Callable[[st.DrawFn, Line], Line]] = [
    wrong_value,
    broken_chain,
    huge_entry_version,
]
ONE_LINE_TEXT = st.text(min_size=1, max_size=200).filter(lambda t: "\n" not in t and t.strip())
ONE_LINE_BYTES = st.binary(min_size=1, max_size=200).filter(
    lambda b: b"\n" not in b and bool(b.strip())
)


@st.composite
def bad_line(draw: st.DrawFn, line: Line) -> bytes:
    """``line`` made bad, or a line of its own that never was an assessment."""
    kind = draw(st.sampled_from(["mutated"] * 4 + ["text", "bytes", "not utf-8", "huge number"]))
    if kind == "text":
        return draw(ONE_LINE_TEXT).encode("utf-8")
    if kind == "bytes":
        return draw(ONE_LINE_BYTES)
    encoded = json.dumps(line).encode("utf-8")
    if kind == "not utf-8":
        at = draw(st.integers(0, len(encoded)))
        return (
            encoded[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"]))
            + encoded[at:]
        )
    if kind == "huge number":
        return encoded.replace(b'"progress": ', b'"progress": ' + b"9" * 5000, 1)
    mutation = draw(st.sampled_from(MUTATIONS))
    return json.dumps(mutation(draw, line)).encode("utf-8")


@st.composite
def import_file(draw: st.DrawFn, pool: list[Line]) -> tuple[list[bytes], set[int]]:
    """Lines (at least one bad) and the numbers of the bad ones. Good and bad lines
    come from different assessments, so no good line repeats an id of a bad one."""
    order = draw(st.permutations(range(len(pool))))
    bad_count = draw(st.integers(1, MAX_LINES))
    good_count = draw(st.integers(0, min(MAX_LINES - bad_count, len(pool) - bad_count)))
    bad = [draw(bad_line(pool[i])) for i in order[:bad_count]]
    good = [json.dumps(pool[i]).encode("utf-8") for i in order[bad_count : bad_count + good_count]]
    lines = draw(st.permutations([(b, True) for b in bad] + [(g, False) for g in good]))
    return [text for text, _ in lines], {n for n, (_, is_bad) in enumerate(lines, 1) if is_bad}


REPORTED = re.compile(r"^line (\d+): ")


@pytest.mark.usefixtures("cli_env")
def test_a_generated_bad_file_is_refused_line_by_line_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], pool: list[Line], raw_engine: Engine, tmp_path: Path
) -> None:
    source = tmp_path / "generated.jsonl"

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        derandomize=True,  # the same files every run: CI never meets a new one at random
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def refused(data: st.DataObject) -> None:
        lines, bad_numbers = data.draw(import_file(pool))
        source.write_bytes(b"\n".join(lines) + b"\n")
        code, out, err = cli(capsys, "import", str(source))
        assert code == 2, err
        assert "Traceback" not in out + err
        header, *reports = err.splitlines()
        assert header.startswith("error: nothing imported: ")
        numbers = {int(match.group(1)) for match in map(REPORTED.match, reports) if match}
        assert all(REPORTED.match(report) for report in reports), err
        assert numbers == bad_numbers, err
        assert count_rows(raw_engine) == (0, 0)

    refused()


@pytest.fixture
def pool(store: AssessmentStore, raw_engine: Engine) -> list[Line]:
    return exported(store, raw_engine)


@pytest.mark.usefixtures("cli_env")
def test_every_wrong_value_is_a_bad_line_of_its_own(
    capsys: pytest.CaptureFixture[str], pool: list[Line], raw_engine: Engine, tmp_path: Path
) -> None:
    # Each value once (hypothesis draws only some): the database would have refused
    # several as an error of the whole import, or stored them as something else.
    source = tmp_path / "one.jsonl"
    for field, values in WRONG_VALUES.items():
        for value in values:
            bad = json.dumps({**pool[1], field: value})
            source.write_text(json.dumps(pool[0]) + "\n" + bad + "\n")
            code, _, err = cli(capsys, "import", str(source))
            assert code == 2 and "Traceback" not in err, (field, value, err)
            header, *reports = err.splitlines()
            assert header == f"error: nothing imported: {len(reports)} bad line(s)", err
            assert reports and all(r.startswith("line 2: ") for r in reports), (field, err)
            assert count_rows(raw_engine) == (0, 0)
