"""Data access: sharded PostgreSQL and Redis, one repository module per feature."""
