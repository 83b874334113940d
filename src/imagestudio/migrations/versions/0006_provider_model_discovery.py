"""providers: when their models were last discovered, and why the last discovery failed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import imagestudio.models.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.add_column(
            sa.Column("models_refreshed_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("refresh_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("refresh_problem")
        batch.drop_column("models_refreshed_at")
