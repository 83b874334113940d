"""projects workspace: public links of projects, and a session's context note

A published project is reached through a random link of which only a SHA-256 hash is stored
(revoking clears it). A session carries a context: a note every language-model call of the
session reads (brand colours, audience, tone).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import imagestudio.models.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("published_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(batch_op.f("uq_projects_public_token_hash"), ["public_token_hash"])
        # A public project has a link, a private one none.
        batch_op.create_check_constraint(
            batch_op.f("ck_projects_public_link"), sa.text("is_public = (public_token_hash IS NOT NULL)")
        )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("context")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_projects_public_link"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_projects_public_token_hash"), type_="unique")
        batch_op.drop_column("published_at")
        batch_op.drop_column("public_token_hash")
