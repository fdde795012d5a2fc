from alembic import context

from migrations.runner import run_global_lineage

# Inside `alembic`, the module `context` proxies the active EnvironmentContext.
run_global_lineage(context)  # type: ignore[arg-type]
