"""Persistence: table definitions, engines, and the repository (the only SQL in the project)."""
