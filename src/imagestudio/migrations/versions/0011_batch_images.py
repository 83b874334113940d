"""batch images: each image of a one-call-per-image batch, stored as it arrives

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 19:00:00.000000

Providers that make one image per call (Stability AI, Gemini) hand over each image as it arrives;
it is stored and recorded here under the lease fence, so a retry after a failure on image k makes
only the images still missing instead of buying the whole batch again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

import imagestudio.models.types

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=False),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("usage", JSONType, nullable=False),
        sa.Column("cost", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("revised_prompt", sa.Text(), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("batch_index >= 0 AND batch_index < 10", name=op.f("ck_batch_images_batch_index")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_batch_images_attempt")),
        sa.CheckConstraint("bytes >= 0", name=op.f("ck_batch_images_bytes")),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_batch_images_size_positive")),
        sa.CheckConstraint("seed IS NULL OR seed >= 0", name=op.f("ck_batch_images_seed")),
        sa.CheckConstraint("cost IS NULL OR cost >= 0", name=op.f("ck_batch_images_cost")),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_batch_images_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_images")),
        sa.UniqueConstraint("generation_id", "batch_index", name=op.f("uq_batch_images_generation_id_batch_index")),
    )


def downgrade() -> None:
    op.drop_table("batch_images")
