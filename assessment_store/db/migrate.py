"""Running the Alembic migrations from code (the CLI's ``migrate``, tests, benchmarks).

Database errors are translated like everywhere else (``db.errors``): an unreachable
server is StoreUnavailableError, never a driver exception."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, pool, text

from assessment_store.db.errors import translated_db_errors
from assessment_store.errors import ConfigurationError


def project_root() -> Path:
    """Where alembic.ini and migrations/ are: beside the package in a checkout (and an
    editable install), else the working directory (the container image's /app)."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "alembic.ini").is_file() and (candidate / "migrations").is_dir():
            return candidate
    raise ConfigurationError(
        "alembic.ini and migrations/ not found beside the package or in the working "
        "directory: run from the project's root"
    )


def alembic_config(database_url: str) -> Config:
    """The project's alembic.ini, pointed at ``database_url``."""
    root = project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade <revision>``."""
    with translated_db_errors():
        command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """``alembic downgrade <revision>``."""
    command.downgrade(alembic_config(database_url), revision)


def revisions(database_url: str) -> tuple[str | None, str | None]:
    """(the database's current revision, the newest revision in migrations/)."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with translated_db_errors(), engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return current, head


def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it does not exist; True if made."""
    url = make_url(database_url)
    admin = create_engine(
        url.set(database="postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with translated_db_errors(), admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).first()
            if exists:
                return False
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        admin.dispose()
