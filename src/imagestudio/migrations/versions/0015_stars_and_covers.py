"""stars and covers: a person stars images, and picks the image that stands for a session

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch_op:
        batch_op.add_column(sa.Column("starred_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(
            sa.Column("thumbnail_is_custom", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("thumbnail_is_custom")
    with op.batch_alter_table("assets") as batch_op:
        batch_op.drop_column("starred_at")
