"""thumbnails on request: an output's thumbnail is made by its first request, not by the worker

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 22:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A kept image of a batch has no thumbnail until its asset's first thumbnail request.
    with op.batch_alter_table("batch_images") as batch_op:
        batch_op.alter_column("thumbnail_key", existing_type=sa.String(512), nullable=True)


def downgrade() -> None:
    # Rows without a thumbnail name the key their first request would have written (the earlier
    # code serves a missing thumbnail as 404 content_missing; the image itself is unharmed).
    op.execute(
        "UPDATE batch_images SET thumbnail_key = "
        "replace(replace(storage_key, 'outputs/', 'thumbnails/'), '.png', '.webp') WHERE thumbnail_key IS NULL"
    )
    with op.batch_alter_table("batch_images") as batch_op:
        batch_op.alter_column("thumbnail_key", existing_type=sa.String(512), nullable=False)
