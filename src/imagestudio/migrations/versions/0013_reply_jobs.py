"""text replies: a chat turn's answer written by a language model, streamed as delta events

A reply is a generation of type 'reply' in the same queue as images and captions; while it runs,
its worker appends 'delta' events (pieces of the answer) to the generation's event log.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
# Follows the UI code jobs (0012): the type lists below include theirs.
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPES_BEFORE = "'text2img', 'img2img', 'inpaint', 'upscale', 'variation', 'caption', 'ui'"
TYPES_AFTER = f"{TYPES_BEFORE}, 'reply'"
EVENTS_BEFORE = (
    "'queued', 'started', 'progress', 'output_stored', 'retrying', 'succeeded', 'failed', 'canceled', "
    "'cancel_requested'"
)
EVENTS_AFTER = f"{EVENTS_BEFORE}, 'delta'"
QUEUED = sa.text("status = 'queued'")


def _set_check(table: str, allowed: str) -> None:
    """Replace the CHECK on `table.type`. SQLite cannot alter a CHECK: the table is rebuilt."""
    recreate = "never" if op.get_bind().dialect.name == "postgresql" else "always"
    with op.batch_alter_table(table, recreate=recreate) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_type"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_type"), sa.text(f"type IN ({allowed})"))
    if recreate == "always" and table == "generations":
        # Reflection loses the DESC of the claim index; rebuild it in the order the queue serves.
        op.drop_index("ix_generations_claim", table_name="generations", sqlite_where=QUEUED)
        op.create_index(
            "ix_generations_claim", "generations", [sa.text("priority DESC"), "id"], unique=False, sqlite_where=QUEUED
        )


def upgrade() -> None:
    _set_check("generations", TYPES_AFTER)
    _set_check("generation_events", EVENTS_AFTER)


def downgrade() -> None:
    # Foreign keys may be off while migrating (SQLite): remove what refers to replies explicitly.
    replies = "SELECT id FROM generations WHERE type = 'reply'"
    op.execute(f"DELETE FROM generation_events WHERE type = 'delta' OR generation_id IN ({replies})")
    op.execute(f"DELETE FROM generation_inputs WHERE generation_id IN ({replies})")
    op.execute("DELETE FROM generations WHERE type = 'reply'")
    _set_check("generation_events", EVENTS_BEFORE)
    _set_check("generations", TYPES_BEFORE)
