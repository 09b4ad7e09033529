"""Approvals: requests for copying, carrying out, extended hours and destruction

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 06:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requester_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("expires", sa.String(length=24), nullable=False),
        sa.Column("copies", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("starts", sa.String(length=24), nullable=True),
        sa.Column("ends", sa.String(length=24), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided", sa.String(length=24), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("done", sa.String(length=24), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["people.id"],
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("requests_state", ["state", "kind"], unique=False)

    op.create_table(
        "request_items",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
        ),
        sa.PrimaryKeyConstraint("request_id", "document_id"),
    )
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.create_index("request_items_document", ["document_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_items", schema=None) as batch_op:
        batch_op.drop_index("request_items_document")

    op.drop_table("request_items")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("requests_state")

    op.drop_table("requests")
