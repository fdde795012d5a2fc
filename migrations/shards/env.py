from alembic import context

from migrations.runner import run_shard_lineage

run_shard_lineage(context)
