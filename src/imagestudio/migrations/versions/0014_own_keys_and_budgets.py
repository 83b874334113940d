"""users' own provider keys, the policy on them, monthly budgets, and who paid for a generation

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 19:00:00.000000

A user's key is stored sealed (AES-GCM under a key derived from the studio's secret); only its last
four characters are kept in the clear. A generation records whether the owner's own key paid for it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import imagestudio.models.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_provider_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_provider_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_provider_keys")),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_user_provider_keys_user_id_provider")),
    )
    op.create_table(
        "provider_key_policies",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("allow_user_keys", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("studio_key_fallback", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_provider_key_policies")),
    )
    op.create_table(
        "studio_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monthly_budget", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_studio_settings_single_row")),
        sa.CheckConstraint(
            "monthly_budget IS NULL OR monthly_budget >= 0", name=op.f("ck_studio_settings_monthly_budget")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studio_settings")),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("monthly_budget", sa.Numeric(precision=12, scale=6), nullable=True))
        batch.create_check_constraint(
            op.f("ck_users_monthly_budget"), sa.text("monthly_budget IS NULL OR monthly_budget >= 0")
        )
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("own_key", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("own_key")
    if op.get_bind().dialect.name == "sqlite":
        # The rebuild's reflection loses the DESC of the claim index; rebuild it as the queue serves.
        queued = sa.text("status = 'queued'")
        op.drop_index("ix_generations_claim", table_name="generations", sqlite_where=queued)
        op.create_index(
            "ix_generations_claim", "generations", [sa.text("priority DESC"), "id"], unique=False, sqlite_where=queued
        )
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_monthly_budget"), type_="check")
        batch.drop_column("monthly_budget")
    op.drop_table("studio_settings")
    op.drop_table("provider_key_policies")
    op.drop_table("user_provider_keys")
