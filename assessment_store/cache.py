"""An optional Redis read cache for ``get_state`` (``ASSESSMENT_STORE_CACHE_ENABLED``).

Every change writes the new row through to the cache after its commit, with a
version compare-and-set in Redis (a Lua script), so a slow writer can never put an
older version over a newer one. Bounds on staleness:

- completed and cancelled assessments never change again: cached until retention
  would delete them;
- anything else is cached for ``CACHE_TTL_SECONDS`` at most, so a change whose
  write-through was lost (Redis blip, a crash between commit and cache write) is
  seen within that bound.

Any Redis error is a cache miss: PostgreSQL stays the truth and the store works
without Redis.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis

from assessment_store.models import Assessment
from assessment_store.outages import OutageLog
from assessment_store.states import TERMINAL_STATES

logger = logging.getLogger("assessment_store.cache")
FORGET_OUTAGES = OutageLog(logger)

KEY_PREFIX = "assessment-store:state:"
# Store (version, data) only if no newer version is cached; then set the expiry.
PUT_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
SOCKET_TIMEOUT_SECONDS = 0.5


class StateCache:
    """Read-through, write-through cache of assessments' current state."""

    def __init__(self, redis_url: str, ttl_seconds: float, retention_days: float) -> None:
        self._client = redis.Redis.from_url(
            redis_url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        )
        self._put = self._client.register_script(PUT_IF_NEWER)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._retention = timedelta(days=retention_days)

    def get(self, assessment_id: str) -> Assessment | None:
        try:
            data = self._client.hget(KEY_PREFIX + assessment_id, "d")
        except redis.RedisError:
            logger.debug("cache_get_failed: %s", assessment_id, exc_info=True)
            return None
        if data is None:
            return None
        return Assessment.model_validate_json(data)

    def put(self, assessment: Assessment) -> None:
        expiry_ms = self._ttl_ms
        if assessment.state in TERMINAL_STATES and assessment.completed_at is not None:
            remaining = assessment.completed_at + self._retention - datetime.now(UTC)
            expiry_ms = max(self._ttl_ms, int(remaining.total_seconds() * 1000))
        try:
            self._put(
                keys=[KEY_PREFIX + assessment.assessment_id],
                args=[assessment.version, assessment.model_dump_json(), expiry_ms],
            )
        except redis.RedisError:
            logger.debug("cache_put_failed: %s", assessment.assessment_id, exc_info=True)

    def forget(self, assessment_ids: list[str]) -> None:
        """Drop entries of deleted (or newly created) ids, so no older incarnation of an
        id outlives its row."""
        if not assessment_ids:
            return
        try:
            self._client.delete(*(KEY_PREFIX + i for i in assessment_ids))
        except redis.RedisError as exc:
            FORGET_OUTAGES.failed("cache_forget_failed", exc, f"{len(assessment_ids)} id(s)")
        else:
            FORGET_OUTAGES.succeeded("cache_forget_failed")

    def close(self) -> None:
        self._client.close()
