"""Pydantic models exchanged between layers: requests, records, pages, stats.

Field names are snake_case in Python and the seed's camelCase on the wire
(``by_alias``); both spellings are accepted on input. Models are frozen and every
datetime is timezone-aware.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    computed_field,
    field_validator,
)
from pydantic.alias_generators import to_camel

from assessment_store import policy
from assessment_store.inputs import hidden_character_problem, over_seconds_limit, text_problem
from assessment_store.states import AssessmentState

ASSESSMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
MAX_REQUEST_TIMEOUT_SECONDS = 86_400.0
MAX_SEARCH_CHARS = 200
Source = Literal["installer", "compliance"]
# Validation context of a model made from a database row (see _no_nul_characters).
FROM_DATABASE: Final[dict[str, bool]] = {"from_database": True}


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base: camelCase aliases, snake_case accepted too, frozen, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form used by the HTTP API and export."""
        return self.model_dump(mode="json", by_alias=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value: Any, info: ValidationInfo) -> Any:
        # PostgreSQL text cannot hold NUL: refuse it here, naming the field, rather
        # than let the driver fail deep inside a transaction. A row read back from
        # the database (FROM_DATABASE context) was checked on its way in.
        if info.context and info.context.get("from_database"):
            return value
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            problem = text_problem(text) if isinstance(text, str) else None
            if problem:
                raise ValueError(problem)
        return value


# JSON types are strict: a boolean or a string where a number belongs (or a number
# where a boolean does) is refused, never coerced ("priority": true is not 1). Floats
# must be finite: NaN would pass every comparison's "else" branch.
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]
Seconds = Annotated[float, Strict(), Field(allow_inf_nan=False)]


def check_request_timeout(value: float | None) -> float | None:
    """At most MAX_REQUEST_TIMEOUT_SECONDS, refused with the unit said (clients written
    against the seeds send milliseconds)."""
    if value is not None and value > MAX_REQUEST_TIMEOUT_SECONDS:
        raise ValueError(over_seconds_limit(value, MAX_REQUEST_TIMEOUT_SECONDS))
    return value


class AssessmentOptions(WireModel):
    """How an assessment should run (the seed's options)."""

    include_details: StrictBool = False
    generate_report: StrictBool = False
    save_results: StrictBool = True
    check_server_status: StrictBool = True
    validate_config: StrictBool = False
    check_compliance: StrictBool = False
    server_filter: list[str] | None = Field(default=None, max_length=1000)
    deep_scan: StrictBool = False
    timeout: Seconds | None = Field(default=None, gt=0)

    @field_validator("timeout")
    @classmethod
    def _timeout_in_seconds(cls, value: float | None) -> float | None:
        return check_request_timeout(value)


class AssessmentRequest(WireModel):
    """What a producer asks for. ``id`` is optional; supplying one makes creation idempotent."""

    id: str | None = None
    server_name: str | None = Field(default=None, min_length=1, max_length=1024)
    assessment_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
    options: AssessmentOptions = Field(default_factory=AssessmentOptions)
    timestamp: AwareDatetime = Field(default_factory=utc_now)
    source: Source = "installer"
    priority: StrictInt = Field(default=5, ge=1, le=10)
    timeout: Seconds | None = Field(default=None, gt=0)

    @field_validator("timeout")
    @classmethod
    def _timeout_in_seconds(cls, value: float | None) -> float | None:
        return check_request_timeout(value)

    @field_validator("id")
    @classmethod
    def _id_is_url_safe(cls, value: str | None) -> str | None:
        if value is not None and not ASSESSMENT_ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-255 characters of letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("server_name")
    @classmethod
    def _server_name_is_plain_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A control or bidirectional character makes a name that displays as another
        # host and that no resolver accepts: refused whatever the type (but a row
        # stored before this rule must still be readable).
        if value is None or (info.context and info.context.get("from_database")):
            return value
        problem = hidden_character_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def requested_timeout_seconds(self) -> float | None:
        """The attempt time limit this request asks for: ``timeout``, else
        ``options.timeout`` (None: the configured default applies, see policy)."""
        return self.timeout or self.options.timeout

    def identity(self) -> dict[str, Any]:
        """What must match for a repeated create with the same id to be the same request.

        ``timestamp`` is left out: a client that retries without one gets a fresh default.
        """
        return self.model_dump(mode="json", by_alias=True, exclude={"id", "timestamp"})


class Assessment(WireModel):
    """One assessment as stored: the current state of its row."""

    model_config = ConfigDict(extra="ignore")

    assessment_id: str
    state: AssessmentState
    version: int
    progress: int
    message: str | None
    priority: int
    assessment_type: str
    server_name: str | None
    source: str
    created_by: str
    request_data: AssessmentRequest
    result_data: dict[str, Any] | None
    error_message: str | None
    retry_count: int
    next_retry_at: datetime | None
    worker_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def is_finished(self) -> bool:
        """Completed, cancelled, or failed with no automatic retry coming."""
        return policy.is_finished(self.state, self.next_retry_at)


class AuditEntry(WireModel):
    """One row of an assessment's audit chain: the change from one version to the next."""

    model_config = ConfigDict(extra="ignore")

    id: int
    assessment_id: str
    event: str
    old_state: AssessmentState | None
    new_state: AssessmentState
    version_from: int | None
    version_to: int
    changed_by: str
    change_reason: str
    created_at: datetime


class AssessmentFilters(WireModel):
    """Filters and keyset pagination for :meth:`AssessmentStore.list_assessments`."""

    states: list[AssessmentState] | None = None
    assessment_type: str | None = Field(default=None, max_length=64)
    server_name: str | None = Field(default=None, max_length=1024)
    source: Source | None = None
    created_by: str | None = Field(default=None, max_length=255)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    limit: StrictInt = Field(default=50, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=512)
    # Text search: a case-insensitive substring of the id, server name or error
    # message (see AssessmentStore.search_assessments).
    q: str | None = Field(default=None, min_length=1, max_length=MAX_SEARCH_CHARS)

    @field_validator("q")
    @classmethod
    def _q_is_plain_text(cls, value: str | None) -> str | None:
        # No control characters: the searched fields are joined by one (U+001F).
        problem = None if value is None else hidden_character_problem(value)
        if problem:
            raise ValueError(problem)
        return value


# A filter's wire name -> the query parameter (GET /v1/assessments) and CLI option
# (``list --type``) that set it, so that an error names what the caller wrote.
FILTER_QUERY_NAMES: Final[dict[str, str]] = {
    "states": "state",
    "assessmentType": "type",
    "serverName": "server",
}


class ProgressUpdate(WireModel):
    """One update of a batch (:meth:`AssessmentStore.batch_update_progress`). Only the
    JSON types (and every model's no-NUL rule) are checked here: a value that
    update_progress refuses (a progress over 100, an unknown id, a stale version)
    refuses that update alone, in its outcome."""

    assessment_id: str
    progress: StrictInt
    message: str | None = None
    expected_version: StrictInt | None = None


class OutcomeError(WireModel):
    """Why one item of a batch was refused: the error's code and message."""

    code: str
    message: str


class ProgressOutcome(WireModel):
    """What became of one update: ``version`` (the new one) when ``ok``, else ``error``."""

    assessment_id: str
    ok: bool
    version: int | None = None
    error: OutcomeError | None = None


class AssessmentPage(WireModel):
    """A page of assessments, newest first; ``next_cursor`` is None on the last page."""

    items: list[Assessment]
    next_cursor: str | None


class AssessmentStats(WireModel):
    """Counts and rates over the store (the seed's AssessmentMetrics)."""

    counts_by_state: dict[AssessmentState, int]
    total: int
    active: int
    dead_letters: int
    window_seconds: int
    throughput_per_minute: float
    average_processing_seconds: float | None
    error_rate: float

    # The seed's AssessmentMetrics names, beside ours (clients written against it read
    # these); its averageProcessingTime is in milliseconds, 0 with nothing finished.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_assessments(self) -> int:
        return self.total

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active_assessments(self) -> int:
        return self.active

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completed_assessments(self) -> int:
        return self.counts_by_state.get(AssessmentState.COMPLETED, 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed_assessments(self) -> int:
        return self.counts_by_state.get(AssessmentState.FAILED, 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average_processing_time(self) -> float:
        return round((self.average_processing_seconds or 0.0) * 1000, 3)


class SystemGauges(WireModel):
    """Whole-system figures for scrape-time metrics."""

    counts_by_state: dict[AssessmentState, int]
    oldest_pending_seconds: float
    dead_letters: int


class ComponentHealth(WireModel):
    """Whether one dependency answered, and how fast."""

    ok: bool
    latency_ms: float | None = None
    detail: str | None = None


class HealthStatus(WireModel):
    """The store's view of its dependencies."""

    healthy: bool
    components: dict[str, ComponentHealth]
    checked_at: datetime
