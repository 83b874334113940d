"""ui code: UI generations as jobs in the generations queue

A chat turn in mode "ui" asks for one self-contained HTML document. Its job is a generation of type
'ui'; the ui_generations row keeps the request, the lineage between versions, and the stored code's
key, size, hash and token usage.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 18:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import imagestudio.models.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "'text2img', 'img2img', 'inpaint', 'upscale', 'variation', 'caption'"
QUEUED = sa.text("status = 'queued'")


def _allow_types(types: str) -> None:
    # SQLite cannot alter a CHECK: the table is rebuilt, and its partial indexes with it.
    recreate = "never" if op.get_bind().dialect.name == "postgresql" else "always"
    with op.batch_alter_table("generations", recreate=recreate) as batch_op:
        batch_op.drop_constraint(op.f("ck_generations_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_generations_type"), sa.text(f"type IN ({types})"))
    if recreate == "never":
        return
    # Reflection loses the DESC of the claim index; rebuild it in the order the queue serves.
    op.drop_index("ix_generations_claim", table_name="generations", sqlite_where=QUEUED)
    op.create_index(
        "ix_generations_claim", "generations", [sa.text("priority DESC"), "id"], unique=False, sqlite_where=QUEUED
    )


def upgrade() -> None:
    _allow_types(f"{BEFORE}, 'ui'")
    op.create_table(
        "ui_generations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("source_asset_id", sa.Uuid(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=True),
        sa.Column("code_bytes", sa.Integer(), nullable=True),
        sa.Column("code_sha256", sa.String(length=64), nullable=True),
        sa.Column("removed_references", sa.Integer(), nullable=True),
        sa.Column("by_ai", sa.Boolean(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("code_bytes IS NULL OR code_bytes >= 0", name=op.f("ck_ui_generations_code_bytes")),
        sa.CheckConstraint("prompt_tokens IS NULL OR prompt_tokens >= 0", name=op.f("ck_ui_generations_prompt_tokens")),
        sa.CheckConstraint(
            "completion_tokens IS NULL OR completion_tokens >= 0", name=op.f("ck_ui_generations_completion_tokens")
        ),
        sa.CheckConstraint("(storage_key IS NULL) = (code_sha256 IS NULL)", name=op.f("ck_ui_generations_code_stored")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_ui_generations_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_ui_generations_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_ui_generations_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_ui_generations_message_id_messages"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["ui_generations.id"],
            name=op.f("fk_ui_generations_parent_id_ui_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_asset_id"],
            ["assets.id"],
            name=op.f("fk_ui_generations_source_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_generations")),
        sa.UniqueConstraint("generation_id", name=op.f("uq_ui_generations_generation_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_ui_generations_storage_key")),
    )
    with op.batch_alter_table("ui_generations") as batch_op:
        batch_op.create_index(batch_op.f("ix_ui_generations_session_id_created_at"), ["session_id", "created_at"])
        batch_op.create_index(batch_op.f("ix_ui_generations_owner_id_created_at"), ["owner_id", "created_at"])
        batch_op.create_index(batch_op.f("ix_ui_generations_parent_id"), ["parent_id"])


def downgrade() -> None:
    op.drop_table("ui_generations")
    op.execute("DELETE FROM generations WHERE type = 'ui'")
    _allow_types(BEFORE)
