from alembic import context

from migrations.runner import run_global_lineage

run_global_lineage(context)
