"""Media lifecycle: find the media a post, story, message or avatar carries (to delete it
with them), an owner's media (quotas, account deletion, the orphaned-object repair), and
media never published (to delete it after a while).

Revision ID: s0008
Revises: s0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "s0008"
down_revision: str | Sequence[str] | None = "s0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE INDEX media_attached ON media (attached_to) WHERE attached_to IS NOT NULL")
    op.execute("CREATE INDEX media_by_owner ON media (owner_id, status)")
    op.execute(
        "CREATE INDEX media_unpublished ON media (processed_at) "
        "WHERE attached_to IS NULL AND status IN ('ready', 'failed')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX media_unpublished")
    op.execute("DROP INDEX media_by_owner")
    op.execute("DROP INDEX media_attached")
