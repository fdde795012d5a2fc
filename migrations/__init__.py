"""Alembic lineages: ``global`` (one schema on database 0) and ``shards`` (every shard schema)."""
