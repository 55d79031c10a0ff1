"""What uvicorn runs: ``uvicorn --factory assessment_store.http.server:app_from_environment``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from assessment_store.config import ENV_PREFIX, MIN_JWT_SECRET_BYTES, Settings, get_settings
from assessment_store.errors import ConfigurationError
from assessment_store.http.app import create_app
from assessment_store.http.auth import DEVELOPMENT_SECRET
from assessment_store.service import AssessmentStore

logger = logging.getLogger("assessment_store.http")


def jwt_secret_for(settings: Settings) -> str:
    """The secret tokens are signed with; refuses to guess outside development mode."""
    if settings.has_real_jwt_secret:
        assert settings.jwt_secret is not None
        return settings.jwt_secret
    if settings.api_dev_mode:
        logger.warning(
            "api_dev_mode: tokens use the public development secret; "
            "set %sJWT_SECRET before exposing this API",
            ENV_PREFIX,
        )
        return DEVELOPMENT_SECRET
    raise ConfigurationError(
        f"{ENV_PREFIX}JWT_SECRET is not set, too short or a placeholder: set it to a real "
        f"secret of at least {MIN_JWT_SECRET_BYTES} bytes, or run `assessment-store api "
        "--dev` to use the development secret"
    )


def app_from_environment() -> FastAPI:
    """The API for this process's settings, publishing to the Celery workers."""
    settings = get_settings()
    secret = jwt_secret_for(settings)
    store = AssessmentStore(settings, application_name="assessment-store-api")
    return create_app(store, secret, max_body_bytes=settings.api_max_body_bytes)
