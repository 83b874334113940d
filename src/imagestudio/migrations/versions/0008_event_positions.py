"""event positions per owner: events are ordered by a per-user counter instead of one global lock

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generation_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.BigInteger(), nullable=True))
    # Existing events keep the number streams sent for them (their global id), so a browser that
    # reconnects across the upgrade with Last-Event-ID resumes where it was; each owner's counter
    # continues from their highest.
    op.execute("UPDATE generation_events SET position = id")
    with op.batch_alter_table("generation_events", schema=None) as batch_op:
        batch_op.alter_column("position", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_generation_events_owner_id_position"), ["owner_id", "position"]
        )
        batch_op.drop_index(batch_op.f("ix_generation_events_session_id_id"))
        batch_op.drop_index(batch_op.f("ix_generation_events_owner_id_id"))
        batch_op.create_index(
            batch_op.f("ix_generation_events_session_id_position"), ["session_id", "position"], unique=False
        )
    op.create_table(
        "event_counters",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_event_counters_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_event_counters")),
    )
    op.execute(
        "INSERT INTO event_counters (owner_id, last_position) "
        "SELECT owner_id, max(position) FROM generation_events GROUP BY owner_id"
    )


def downgrade() -> None:
    op.drop_table("event_counters")
    with op.batch_alter_table("generation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_events_session_id_position"))
        batch_op.create_index(batch_op.f("ix_generation_events_owner_id_id"), ["owner_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_generation_events_session_id_id"), ["session_id", "id"], unique=False)
        batch_op.drop_constraint(batch_op.f("uq_generation_events_owner_id_position"), type_="unique")
        batch_op.drop_column("position")
