"""Per-shard id generator: next_id() with 41 bits of ms, 13 of shard, 10 of sequence.

Revision ID: s0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

from db.ids import EPOCH_MS
from db.shards import shard_schema
from migrations.runner import current_shard

revision: str = "s0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shard = current_shard()
    schema = shard_schema(shard)
    op.execute("CREATE SEQUENCE id_sequence")
    # The sequence is named with its schema because a regclass literal inside PL/pgSQL is
    # resolved by the caller's search_path at run time, and the app does not set one.
    op.execute(
        f"""
        CREATE FUNCTION next_id(OUT result bigint) LANGUAGE plpgsql AS $$
        DECLARE
            epoch_ms bigint := {EPOCH_MS};
            sequence_value bigint;
            now_ms bigint;
            shard_id int := {shard};
        BEGIN
            SELECT nextval('"{schema}".id_sequence') % 1024 INTO sequence_value;
            SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) INTO now_ms;
            result := (now_ms - epoch_ms) << 23;
            result := result | (shard_id << 10);
            result := result | sequence_value;
        END;
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION next_id()")
    op.execute("DROP SEQUENCE id_sequence")
