"""Typed settings: the only module that reads the environment.

Every variable is prefixed ``ASSESSMENT_STORE_`` and may also come from a ``.env``
file in the working directory. Settings are validated on load; a bad value raises
:class:`ConfigurationError` naming the variable, never a bare pydantic traceback.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assessment_store.encryption import parse_keys
from assessment_store.errors import ConfigurationError

ENV_PREFIX = "ASSESSMENT_STORE_"
DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/assessment_store"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Secrets that ship in examples and must never protect a production deployment.
MIN_JWT_SECRET_BYTES = 32
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret"})
# Settings whose bad value an error never repeats: secrets, and URLs that may carry a
# password (an error goes to a log or a terminal).
NOT_ECHOED = frozenset(
    {
        "jwt_secret",
        "flower_basic_auth",
        "compliance_api_key",
        "database_url",
        "read_database_url",
        "redis_url",
        "broker_url",
        "encryption_keys",
    }
)


class Settings(BaseSettings):
    """All configuration of the store, its workers, beat and API."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    read_database_url: str | None = None
    # With READ_DATABASE_URL: for how long after a caller's write its lists, searches
    # and stats go to the primary unless the replica has replayed that write (see
    # assessment_store/consistency.py). 0: never (they may miss the caller's writes).
    read_your_writes_seconds: float = Field(default=5.0, ge=0, le=3600)
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str | None = None
    jwt_secret: str | None = None
    # The longest token lifetime the API accepts (exp - iat): a leaked token must not
    # stay valid for years. `assessment-store token` refuses to mint longer ones.
    jwt_max_lifetime_seconds: float = Field(default=7 * 86_400, gt=0, le=366 * 86_400)
    # Explicit opt-in (``assessment-store api --dev``): serve with a fixed, public
    # development secret when JWT_SECRET is not set. Never in production.
    api_dev_mode: bool = False
    # The Redis read cache for get_state (see assessment_store/cache.py).
    cache_enabled: bool = False
    cache_ttl_seconds: float = Field(default=1.0, gt=0, le=3600)
    # Flower's basic auth, "user:password" (comma-separate several users).
    flower_basic_auth: str | None = None
    # Explicit opt-out (``assessment-store flower --unauthenticated``): Flower without
    # credentials, on a loopback address only, never in production (see
    # assessment_store/flower_access.py); without either, Flower refuses to start.
    flower_unauthenticated: bool = False
    # The worker's main process serves its children's metrics here (0: not at all).
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    # ... on this address only (set 0.0.0.0 to let a remote Prometheus scrape it).
    worker_metrics_host: str = "127.0.0.1"
    api_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Encryption at rest (off when unset): "id:base64key,...", the first key encrypts,
    # all decrypt (see assessment_store/encryption.py and at_rest.py).
    encryption_keys: str | None = Field(default=None, repr=False)
    handlers: str = ""
    # Celery task events (task-received/started/succeeded... for Flower's task views).
    # Off by default: sending them costs the worker's main process a large share of
    # its time (see the README's figures); Flower lists workers, pools and queues
    # either way (worker heartbeats and remote control do not need them).
    task_events: bool = False
    # Messages each prefork child reserves ahead (Celery's worker_prefetch_multiplier;
    # 4, Celery's default). Reserving keeps children busy while the main process
    # fetches: short assessments run about 20% faster than with 1 (README,
    # Performance). Long assessments want 1: a busy worker then holds no reserved
    # work while other workers are idle, and a high-priority arrival is the next to
    # run rather than the next after the reserved ones.
    worker_prefetch_multiplier: int = Field(default=4, ge=1, le=128)

    max_retries: int = Field(default=3, ge=0, le=100)
    retry_backoff_seconds: float = Field(default=5.0, gt=0, le=86_400)
    retry_backoff_max_seconds: float = Field(default=300.0, gt=0, le=7 * 86_400)
    lease_seconds: float = Field(default=30.0, gt=0, le=86_400)
    redispatch_after_seconds: float = Field(default=60.0, gt=0, le=86_400)
    maintenance_interval_seconds: float = Field(default=10.0, gt=0, le=86_400)
    retention_days: float = Field(default=30.0, gt=0, le=36_500)
    retention_interval_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    default_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    cleanup_batch_size: int = Field(default=500, ge=1, le=100_000)
    redispatch_batch_size: int = Field(default=500, ge=1, le=100_000)
    # Redis redelivers a message not acked within this time; keep it above the longest
    # attempt (duplicates are harmless, but wasteful).
    broker_visibility_timeout_seconds: float = Field(default=7200.0, ge=60, le=7 * 86_400)
    # How long a publish may block creation when the broker is down (the row is the
    # promise; re-dispatch publishes later).
    broker_publish_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    compliance_base_url: str = "http://127.0.0.1:8081"
    compliance_api_key: str | None = None
    compliance_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    compliance_breaker_failures: int = Field(default=5, ge=1, le=1000)
    compliance_breaker_reset_seconds: float = Field(default=30.0, gt=0, le=3600)

    # Moving off the legacy event system (SPEC section 11; assessment_store/migration).
    # Defaults only: `assessment-store migration set` overrides the first three at run
    # time through the database, in every process within MIGRATION_REFRESH_SECONDS.
    migration_enable_store: bool = True
    migration_legacy_fallback: bool = False
    # The share of new assessments the store gets, by a stable hash of the id.
    migration_percentage: int = Field(default=100, ge=0, le=100)
    migration_enable_metrics: bool = True
    # A log line per routing decision and per legacy event (the seed's audit service).
    migration_enable_audit_logging: bool = False
    migration_refresh_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _must_be_postgresql(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("postgresql"):
            raise ValueError("must be a postgresql:// or postgresql+psycopg2:// URL")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_colon_password(cls, value: str | None) -> str | None:
        if value is not None and not all(
            user and password
            for user, _, password in (pair.partition(":") for pair in value.split(","))
        ):
            raise ValueError("must be user:password (comma-separated for several users)")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _key_ring(cls, value: str | None) -> str | None:
        if value is not None:
            parse_keys(value)  # its ValueError names entries by position, never their text
        return value

    @field_validator("redis_url")
    @classmethod
    def _must_be_redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.retry_backoff_max_seconds < self.retry_backoff_seconds:
            raise ValueError(
                f"{ENV_PREFIX}RETRY_BACKOFF_MAX_SECONDS ({self.retry_backoff_max_seconds}) "
                f"must not be below {ENV_PREFIX}RETRY_BACKOFF_SECONDS "
                f"({self.retry_backoff_seconds})"
            )
        if self.default_timeout_seconds >= self.broker_visibility_timeout_seconds:
            raise ValueError(
                f"{ENV_PREFIX}DEFAULT_TIMEOUT_SECONDS ({self.default_timeout_seconds}) must be "
                f"below {ENV_PREFIX}BROKER_VISIBILITY_TIMEOUT_SECONDS "
                f"({self.broker_visibility_timeout_seconds})"
            )
        if self.environment == "production" and self.api_dev_mode:
            raise ValueError(
                f"{ENV_PREFIX}API_DEV_MODE cannot be used when {ENV_PREFIX}ENVIRONMENT is "
                "production"
            )
        if self.environment == "production" and not self.has_real_jwt_secret:
            raise ValueError(
                f"{ENV_PREFIX}JWT_SECRET must be set to a real secret (at least "
                f"{MIN_JWT_SECRET_BYTES} bytes) when {ENV_PREFIX}ENVIRONMENT is production"
            )
        return self

    @property
    def has_real_jwt_secret(self) -> bool:
        """A JWT secret is set, long enough for HS256 (32 bytes, RFC 7518), and not one of
        the well-known placeholders."""
        return (
            self.jwt_secret is not None
            and len(self.jwt_secret.encode()) >= MIN_JWT_SECRET_BYTES
            and self.jwt_secret.strip().lower() not in PLACEHOLDER_SECRETS
        )

    @property
    def effective_broker_url(self) -> str:
        """The Celery broker: ``BROKER_URL`` when set, else the Redis URL."""
        return self.broker_url or self.redis_url


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings, turning pydantic errors into ones that name the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            shown = error.get("input")
            hidden = field == "" or field in NOT_ECHOED or isinstance(shown, dict)
            value = "" if hidden else f" (got {shown!r})"
            problems.append(f"{name}: {error['msg']}{value}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
