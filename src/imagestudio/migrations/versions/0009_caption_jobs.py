"""language models: caption jobs, and how each generation's prompt was made

Captions run as generations of type caption and keep their style and token usage. A generation
records whether a language model was asked to rewrite its prompt and how the prompt it sent was
made; a user setting makes asking the default. Messages say what they hold (text, image, code).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 15:40:00.000000

A caption is asked for before its text exists, so text becomes nullable; the job that writes it is a
generation (type 'caption') in the same queue as images, linked by captions.generation_id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMAGE_TYPES = "'text2img', 'img2img', 'inpaint', 'upscale', 'variation'"
QUEUED = sa.text("status = 'queued'")


PROMPT_METHOD = "prompt_method IS NULL OR prompt_method IN ('language_model', 'template', 'none')"


def _change_generations(types: str, *, with_prompt_plan: bool) -> None:
    """Allow these types, and add (or drop) the prompt plan columns, in one rebuild on SQLite."""
    condition = f"type IN ({types})"
    # SQLite cannot alter a CHECK: the table is rebuilt, and its partial indexes with it.
    recreate = "never" if op.get_bind().dialect.name == "postgresql" else "always"
    with op.batch_alter_table("generations", recreate=recreate) as batch_op:
        batch_op.drop_constraint(op.f("ck_generations_type"), type_="check")
        batch_op.create_check_constraint(op.f("ck_generations_type"), sa.text(condition))
        if with_prompt_plan:
            batch_op.add_column(sa.Column("enhance_prompt", sa.Boolean(), server_default=sa.false(), nullable=False))
            batch_op.add_column(sa.Column("prompt_method", sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column("prompt_plan", JSONType, nullable=True))
            batch_op.create_check_constraint(op.f("ck_generations_prompt_method"), sa.text(PROMPT_METHOD))
        else:
            batch_op.drop_constraint(op.f("ck_generations_prompt_method"), type_="check")
            batch_op.drop_column("prompt_plan")
            batch_op.drop_column("prompt_method")
            batch_op.drop_column("enhance_prompt")
    if recreate == "never":
        return
    # Reflection loses the DESC of the claim index; rebuild it in the order the queue serves.
    op.drop_index("ix_generations_claim", table_name="generations", sqlite_where=QUEUED)
    op.create_index(
        "ix_generations_claim", "generations", [sa.text("priority DESC"), "id"], unique=False, sqlite_where=QUEUED
    )


def upgrade() -> None:
    _change_generations(f"{IMAGE_TYPES}, 'caption'", with_prompt_plan=True)
    with op.batch_alter_table("user_settings") as batch_op:
        batch_op.add_column(sa.Column("enhance_prompt", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("type", sa.String(length=8), server_default="text", nullable=False))
        batch_op.create_check_constraint(op.f("ck_messages_type"), sa.text("type IN ('text', 'image', 'code')"))
    # Assistant turns so far all made images.
    op.execute("UPDATE messages SET type = 'image' WHERE role = 'assistant'")
    with op.batch_alter_table("captions") as batch_op:
        batch_op.add_column(sa.Column("generation_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("style", sa.String(length=16), server_default="short", nullable=False))
        batch_op.add_column(sa.Column("by_ai", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("prompt_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("completion_tokens", sa.Integer(), nullable=True))
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=True)
        batch_op.create_foreign_key(
            op.f("fk_captions_generation_id_generations"), "generations", ["generation_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_unique_constraint(op.f("uq_captions_generation_id"), ["generation_id"])
        batch_op.create_check_constraint(op.f("ck_captions_style"), sa.text("style IN ('short', 'detailed', 'prompt')"))
        batch_op.create_check_constraint(
            op.f("ck_captions_prompt_tokens"), sa.text("prompt_tokens IS NULL OR prompt_tokens >= 0")
        )
        batch_op.create_check_constraint(
            op.f("ck_captions_completion_tokens"), sa.text("completion_tokens IS NULL OR completion_tokens >= 0")
        )
    with op.batch_alter_table("captions") as batch_op:
        batch_op.alter_column("style", server_default=None)


def downgrade() -> None:
    op.execute("DELETE FROM captions WHERE text IS NULL")
    with op.batch_alter_table("captions") as batch_op:
        batch_op.drop_constraint(op.f("ck_captions_completion_tokens"), type_="check")
        batch_op.drop_constraint(op.f("ck_captions_prompt_tokens"), type_="check")
        batch_op.drop_constraint(op.f("ck_captions_style"), type_="check")
        batch_op.drop_constraint(op.f("uq_captions_generation_id"), type_="unique")
        batch_op.drop_constraint(op.f("fk_captions_generation_id_generations"), type_="foreignkey")
        batch_op.alter_column("text", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("completion_tokens")
        batch_op.drop_column("prompt_tokens")
        batch_op.drop_column("by_ai")
        batch_op.drop_column("style")
        batch_op.drop_column("generation_id")
    op.execute("DELETE FROM generations WHERE type = 'caption'")
    _change_generations(IMAGE_TYPES, with_prompt_plan=False)
    with op.batch_alter_table("user_settings") as batch_op:
        batch_op.drop_column("enhance_prompt")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_constraint(op.f("ck_messages_type"), type_="check")
        batch_op.drop_column("type")
