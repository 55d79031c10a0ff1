"""Persistence: tables, engines, migrations, and the only SQL in the project (repository,
reads, sweeps, imports)."""
