from alembic import context

from migrations.runner import run_shard_lineage

# Inside `alembic`, the module `context` proxies the active EnvironmentContext.
run_shard_lineage(context)  # type: ignore[arg-type]
