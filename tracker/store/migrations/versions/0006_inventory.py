"""Inventory (清查): runs, each reader's answer, the report's items

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started", sa.String(length=24), nullable=False),
        sa.Column("deadline", sa.String(length=24), nullable=False),
        sa.Column("finished", sa.String(length=24), nullable=True),
        sa.Column("readers", sa.Text(), nullable=False),
        sa.Column("not_read", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inventory_runs", schema=None) as batch_op:
        batch_op.create_index("inventory_runs_state", ["state", "room_id"], unique=False)

    op.create_table(
        "inventory_reads",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=80), nullable=False),
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("answered", sa.String(length=24), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["inventory_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "reader"),
        sa.UniqueConstraint("command_id"),
    )
    op.create_table(
        "inventory_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("epc", sa.String(length=128), nullable=True),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("cabinet", sa.String(length=100), nullable=True),
        sa.Column("home", sa.String(length=100), nullable=True),
        sa.Column("status_before", sa.String(length=16), nullable=True),
        sa.Column("status_after", sa.String(length=16), nullable=True),
        sa.Column("holder_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["inventory_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inventory_items", schema=None) as batch_op:
        batch_op.create_index("inventory_items_run", ["run_id", "outcome"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inventory_items", schema=None) as batch_op:
        batch_op.drop_index("inventory_items_run")

    op.drop_table("inventory_items")
    op.drop_table("inventory_reads")
    with op.batch_alter_table("inventory_runs", schema=None) as batch_op:
        batch_op.drop_index("inventory_runs_state")

    op.drop_table("inventory_runs")
