"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 22:42:19.314483
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import imagestudio.models.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# sessions and assets reference each other. SQLite accepts a foreign key to a table that does not
# exist yet (and cannot ALTER one in later), so it gets the constraint inline; PostgreSQL adds it
# once assets exists.
THUMBNAIL_FK = "fk_sessions_thumbnail_asset_id_assets"


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _inline_thumbnail_fk() -> list[sa.ForeignKeyConstraint]:
    if not _is_sqlite():
        return []
    return [sa.ForeignKeyConstraint(["thumbnail_asset_id"], ["assets.id"], name=THUMBNAIL_FK, ondelete="SET NULL")]


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("configured", sa.Boolean(), nullable=False),
        sa.Column("configuration_problem", sa.Text(), nullable=True),
        sa.Column(
            "capabilities",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "models", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_providers")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("daily_image_quota", sa.Integer(), nullable=True),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("password_changed_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "daily_image_quota IS NULL OR daily_image_quota >= 0", name=op.f("ck_users_daily_image_quota")
        ),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_users_email_lowercase")),
        sa.CheckConstraint("max_running IS NULL OR max_running >= 1", name=op.f("ck_users_max_running")),
        sa.CheckConstraint("rate_per_minute IS NULL OR rate_per_minute >= 0", name=op.f("ck_users_rate_per_minute")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column(
            "scopes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column("expires_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0", name=op.f("ck_api_keys_rate_limit")
        ),
        sa.CheckConstraint("usage_count >= 0", name=op.f("ck_api_keys_usage_count")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idle_expires_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auth_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_sessions_token_hash")),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column(
            "settings", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('draft', 'active', 'completed', 'archived')", name=op.f("ck_projects_status")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_projects_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_owner_id_updated_at"), ["owner_id", "updated_at"], unique=False)

    op.create_table(
        "usage_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("window_kind", sa.String(length=8), nullable=False),
        sa.Column("window_start", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("window_kind IN ('minute', 'day')", name=op.f("ck_usage_counters_window_kind")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_usage_counters_used")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_usage_counters_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "window_kind", "window_start", name=op.f("pk_usage_counters")),
    )
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("theme", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("default_provider", sa.String(length=64), nullable=True),
        sa.Column("default_model", sa.String(length=200), nullable=True),
        sa.Column(
            "default_params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "notifications",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("theme IN ('light', 'dark', 'system')", name=op.f("ck_user_settings_theme")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_settings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_settings")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("title_is_custom", sa.Boolean(), nullable=False),
        sa.Column("thumbnail_asset_id", sa.Uuid(), nullable=True),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("last_provider", sa.String(length=64), nullable=True),
        sa.Column("last_model", sa.String(length=200), nullable=True),
        sa.Column("archived_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("image_count >= 0", name=op.f("ck_sessions_image_count")),
        sa.CheckConstraint("message_count >= 0", name=op.f("ck_sessions_message_count")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_sessions_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_sessions_project_id_projects"), ondelete="SET NULL"
        ),
        *_inline_thumbnail_fk(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_owner_id_updated_at"), ["owner_id", "updated_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_project_id"), ["project_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parent_message_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column(
            "extra", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant', 'tool', 'system')", name=op.f("ck_messages_role")),
        sa.CheckConstraint(
            "status IS NULL OR status IN ('queued', 'processing', 'succeeded', 'failed', 'canceled')",
            name=op.f("ck_messages_status"),
        ),
        sa.CheckConstraint(
            "(prompt_tokens IS NULL OR prompt_tokens >= 0) AND (completion_tokens IS NULL OR completion_tokens >= 0)",
            name=op.f("ck_messages_token_usage"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_messages_author_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["parent_message_id"],
            ["messages.id"],
            name=op.f("fk_messages_parent_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_messages_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_parent_message_id"), ["parent_message_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_session_id_created_at"), ["session_id", "created_at"], unique=False
        )

    op.create_table(
        "generations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("parent_generation_id", sa.Uuid(), nullable=True),
        sa.Column("retried_from_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("served_by", sa.String(length=64), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("enhanced_prompt", sa.Text(), nullable=True),
        sa.Column(
            "prompt_options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("aspect_ratio", sa.String(length=16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("num_images", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("guidance", sa.Float(), nullable=True),
        sa.Column("strength", sa.Float(), nullable=True),
        sa.Column("scheduler", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("upscale_factor", sa.Integer(), nullable=True),
        sa.Column(
            "params", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cost", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column(
            "usage", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("progress_step", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("running_slot", sa.Integer(), nullable=True),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'succeeded', 'failed', 'canceled')", name=op.f("ck_generations_status")
        ),
        sa.CheckConstraint(
            "type IN ('text2img', 'img2img', 'inpaint', 'upscale', 'variation')", name=op.f("ck_generations_type")
        ),
        sa.CheckConstraint(
            "attempt >= 0 AND max_attempts >= 1 AND attempt <= max_attempts", name=op.f("ck_generations_attempts")
        ),
        sa.CheckConstraint("cost IS NULL OR cost >= 0", name=op.f("ck_generations_cost")),
        sa.CheckConstraint("guidance IS NULL OR guidance >= 0", name=op.f("ck_generations_guidance")),
        sa.CheckConstraint("num_images BETWEEN 1 AND 10", name=op.f("ck_generations_num_images")),
        sa.CheckConstraint("running_slot IS NULL OR running_slot >= 0", name=op.f("ck_generations_running_slot")),
        sa.CheckConstraint("seed IS NULL OR seed >= 0", name=op.f("ck_generations_seed")),
        sa.CheckConstraint("steps IS NULL OR steps > 0", name=op.f("ck_generations_steps")),
        sa.CheckConstraint(
            "strength IS NULL OR (strength >= 0 AND strength <= 1)", name=op.f("ck_generations_strength")
        ),
        sa.CheckConstraint(
            "upscale_factor IS NULL OR upscale_factor BETWEEN 2 AND 8", name=op.f("ck_generations_upscale_factor")
        ),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_generations_size_positive")),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_generations_message_id_messages"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_generations_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_generation_id"],
            ["generations.id"],
            name=op.f("fk_generations_parent_generation_id_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["retried_from_id"],
            ["generations.id"],
            name=op.f("fk_generations_retried_from_id_generations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_generations_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generations")),
        sa.UniqueConstraint("message_id", name=op.f("uq_generations_message_id")),
        sa.UniqueConstraint("owner_id", "idempotency_key", name=op.f("uq_generations_owner_id_idempotency_key")),
    )
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_generations_claim",
            ["priority", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )
        batch_op.create_index(
            "ix_generations_lease",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.create_index(
            batch_op.f("ix_generations_owner_id_created_at"), ["owner_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_generations_parent_generation_id"), ["parent_generation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_generations_retried_from_id"), ["retried_from_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_generations_session_id_created_at"), ["session_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_generations_status"), ["status"], unique=False)
        batch_op.create_index(
            "uq_generations_owner_running_slot",
            ["owner_id", "running_slot"],
            unique=True,
            postgresql_where=sa.text("running_slot IS NOT NULL"),
            sqlite_where=sa.text("running_slot IS NOT NULL"),
        )

    op.create_table(
        "assets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("generation_id", sa.Uuid(), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=True),
        sa.Column("mime_type", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("original_filename", sa.String(length=255), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind <> 'output' OR (generation_id IS NOT NULL AND batch_index IS NOT NULL)",
            name=op.f("ck_assets_output_origin"),
        ),
        sa.CheckConstraint("kind IN ('upload', 'output')", name=op.f("ck_assets_kind")),
        sa.CheckConstraint(
            "purpose IS NULL OR purpose IN ('init', 'mask', 'reference', 'attachment')", name=op.f("ck_assets_purpose")
        ),
        sa.CheckConstraint("batch_index IS NULL OR batch_index >= 0", name=op.f("ck_assets_batch_index")),
        sa.CheckConstraint("bytes >= 0", name=op.f("ck_assets_bytes")),
        sa.CheckConstraint("seed IS NULL OR seed >= 0", name=op.f("ck_assets_seed")),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_assets_size_positive")),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"], name=op.f("fk_assets_generation_id_generations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_assets_owner_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_assets_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("generation_id", "batch_index", name=op.f("uq_assets_generation_id_batch_index")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_assets_storage_key")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_owner_id_created_at"), ["owner_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_owner_id_sha256"), ["owner_id", "sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_session_id_created_at"), ["session_id", "created_at"], unique=False)

    if not _is_sqlite():
        op.create_foreign_key(THUMBNAIL_FK, "sessions", "assets", ["thumbnail_asset_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "generation_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('queued', 'started', 'progress', 'output_stored', 'retrying', 'succeeded', 'failed', 'canceled', 'cancel_requested')",
            name=op.f("ck_generation_events_type"),
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_events_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_generation_events_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_generation_events_session_id_sessions"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_events")),
        sa.UniqueConstraint("generation_id", "sequence", name=op.f("uq_generation_events_generation_id_sequence")),
    )
    with op.batch_alter_table("generation_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generation_events_owner_id_id"), ["owner_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_generation_events_session_id_id"), ["session_id", "id"], unique=False)

    op.create_table(
        "captions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("asset_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("created_at", imagestudio.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_captions_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_captions_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_captions")),
    )
    with op.batch_alter_table("captions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_captions_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_captions_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "generation_inputs",
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("asset_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "role IN ('init', 'mask', 'reference', 'attachment')", name=op.f("ck_generation_inputs_role")
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_generation_inputs_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_generation_inputs_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("generation_id", "asset_id", "role", name=op.f("pk_generation_inputs")),
    )
    with op.batch_alter_table("generation_inputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generation_inputs_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "message_attachments",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("asset_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_message_attachments_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_attachments_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "asset_id", name=op.f("pk_message_attachments")),
    )
    with op.batch_alter_table("message_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_attachments_asset_id"), ["asset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_attachments_asset_id"))

    op.drop_table("message_attachments")
    with op.batch_alter_table("generation_inputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_inputs_asset_id"))

    op.drop_table("generation_inputs")
    with op.batch_alter_table("captions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_captions_owner_id"))
        batch_op.drop_index(batch_op.f("ix_captions_asset_id"))

    op.drop_table("captions")
    with op.batch_alter_table("generation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_events_session_id_id"))
        batch_op.drop_index(batch_op.f("ix_generation_events_owner_id_id"))

    op.drop_table("generation_events")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_session_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_assets_owner_id_sha256"))
        batch_op.drop_index(batch_op.f("ix_assets_owner_id_created_at"))

    if not _is_sqlite():
        op.drop_constraint(THUMBNAIL_FK, "sessions", type_="foreignkey")
    op.drop_table("assets")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_generations_owner_running_slot",
            postgresql_where=sa.text("running_slot IS NOT NULL"),
            sqlite_where=sa.text("running_slot IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_generations_status"))
        batch_op.drop_index(batch_op.f("ix_generations_session_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_generations_retried_from_id"))
        batch_op.drop_index(batch_op.f("ix_generations_parent_generation_id"))
        batch_op.drop_index(batch_op.f("ix_generations_owner_id_created_at"))
        batch_op.drop_index(
            "ix_generations_lease",
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.drop_index(
            "ix_generations_claim",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.drop_table("generations")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_session_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_messages_parent_message_id"))

    op.drop_table("messages")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_project_id"))
        batch_op.drop_index(batch_op.f("ix_sessions_owner_id_updated_at"))

    op.drop_table("sessions")
    op.drop_table("user_settings")
    op.drop_table("usage_counters")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_owner_id_updated_at"))

    op.drop_table("projects")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_sessions_expires_at"))

    op.drop_table("auth_sessions")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("providers")
