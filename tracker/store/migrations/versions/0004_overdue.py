"""Overdue (催办): reminders, their messages, the last check; people's email address

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-03 07:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))

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


def downgrade() -> None:
    op.drop_table("overdue_checks")
    with op.batch_alter_table("overdue_messages", schema=None) as batch_op:
        batch_op.drop_index("overdue_messages_queue")

    op.drop_table("overdue_messages")
    op.drop_table("overdue_reminders")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("email")
