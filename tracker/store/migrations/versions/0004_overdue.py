"""Overdue (催办): reminders, their messages, the last check; people's email address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:05:00.000000
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from protocol.canonical import canonical
from protocol.timefmt import format_ts

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
    _record_email_column()

    op.create_table(
        "overdue_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.String(length=24), nullable=False),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("alarm_id", sa.String(length=256), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["loans.id"],
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loan_id", "step"),
    )
    op.create_table(
        "overdue_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reminder_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("next_try", sa.String(length=24), nullable=False),
        sa.Column("sent", sa.String(length=24), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reminder_id"],
            ["overdue_reminders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("overdue_messages", schema=None) as batch_op:
        batch_op.create_index("overdue_messages_queue", ["state", "next_try"], unique=False)

    op.create_table(
        "overdue_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checked", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def _record_email_column() -> None:
    """Every person registered before this revision gets an audit entry showing the new
    column (``email`` null), so ``ironroom audit verify`` still finds each row equal to
    its last entry."""
    from tracker.store.audit import GENESIS, entry_hash

    conn = op.get_bind()
    people = conn.execute(sa.text("SELECT id, audit_id FROM people ORDER BY id")).all()
    if not people:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7263540)"))
    head = conn.execute(sa.text("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")).first()
    last_id, prev = (head[0], head[1]) if head else (0, GENESIS)
    ts = format_ts(datetime.now(UTC))
    for pid, audit_id in people:
        row = conn.execute(
            sa.text("SELECT after FROM audit WHERE id = :id"), {"id": audit_id}
        ).first()
        if row is None or row[0] is None:
            continue  # a row the chain never saw: verify names it as it did before
        before = json.loads(row[0])
        if "email" in before:
            continue
        fields = {
            "id": last_id + 1,
            "ts": ts,
            "actor": "migration:0004",
            "action": "person.schema",
            "entity": "person",
            "entity_key": str(pid),
            "before": canonical(before).decode(),
            "after": canonical({**before, "email": None}).decode(),
            "reason": "people gain an email address (overdue reminders)",
        }
        digest = entry_hash(prev, fields)
        conn.execute(
            sa.text(
                "INSERT INTO audit (id, ts, actor, action, entity, entity_key, before, after,"
                " reason, prev, hash) VALUES (:id, :ts, :actor, :action, :entity,"
                " :entity_key, :before, :after, :reason, :prev, :hash)"
            ),
            {**fields, "prev": prev, "hash": digest},
        )
        conn.execute(
            sa.text("UPDATE people SET audit_id = :a WHERE id = :id"),
            {"a": last_id + 1, "id": pid},
        )
        last_id, prev = last_id + 1, digest


def downgrade() -> None:
    op.drop_table("overdue_checks")
    with op.batch_alter_table("overdue_messages", schema=None) as batch_op:
        batch_op.drop_index("overdue_messages_queue")

    op.drop_table("overdue_messages")
    op.drop_table("overdue_reminders")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("email")
