"""generation queue: claim index in priority-first order, storage cleanup flag

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:10:00.000000

The claim index becomes (priority DESC, id) so the claim statement reads the queue in the order it
serves it (highest priority first, then oldest) and stops early instead of sorting every queued row.
cleanup_pending marks unsuccessful generations whose crashed attempts may have left objects in
storage; a sweeper deletes them and clears the flag.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("status = 'queued'")
CLEANUP = sa.text("cleanup_pending")


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cleanup_pending", sa.Boolean(), server_default=sa.false(), nullable=False))
    # Plain index operations: both databases create and drop indexes without rebuilding the table.
    op.drop_index("ix_generations_claim", table_name="generations", postgresql_where=QUEUED, sqlite_where=QUEUED)
    op.create_index(
        "ix_generations_claim",
        "generations",
        [sa.text("priority DESC"), "id"],
        unique=False,
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    op.create_index(
        "ix_generations_cleanup", "generations", ["id"], unique=False, postgresql_where=CLEANUP, sqlite_where=CLEANUP
    )


def downgrade() -> None:
    op.drop_index("ix_generations_cleanup", table_name="generations", postgresql_where=CLEANUP, sqlite_where=CLEANUP)
    op.drop_index("ix_generations_claim", table_name="generations", postgresql_where=QUEUED, sqlite_where=QUEUED)
    op.create_index(
        "ix_generations_claim",
        "generations",
        ["priority", "id"],
        unique=False,
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("cleanup_pending")
