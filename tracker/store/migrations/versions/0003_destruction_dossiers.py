"""Destruction records (销毁) and dossiers (立卷)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 06:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destructions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=80), nullable=False),
        sa.Column("destroyed", sa.String(length=24), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("witness1_id", sa.String(length=64), nullable=False),
        sa.Column("witness1_badge", sa.String(length=64), nullable=False),
        sa.Column("witness1_at", sa.String(length=24), nullable=False),
        sa.Column("witness2_id", sa.String(length=64), nullable=False),
        sa.Column("witness2_badge", sa.String(length=64), nullable=False),
        sa.Column("witness2_at", sa.String(length=24), nullable=False),
        sa.Column("event_id", sa.String(length=120), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["requests.id"],
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
        ),
        sa.ForeignKeyConstraint(
            ["witness1_id"],
            ["people.id"],
        ),
        sa.ForeignKeyConstraint(
            ["witness2_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_table(
        "destruction_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("destruction_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=200), nullable=False),
        sa.Column("copy_no", sa.Integer(), nullable=False),
        sa.Column("copies", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=True),
        sa.Column("classification", sa.Integer(), nullable=False),
        sa.Column("status_before", sa.String(length=16), nullable=False),
        sa.Column("holder_before", sa.String(length=64), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["destruction_id"],
            ["destructions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id"),
    )
    with op.batch_alter_table("destruction_items", schema=None) as batch_op:
        batch_op.create_index("destruction_items_destruction", ["destruction_id"], unique=False)

    op.create_table(
        "dossiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "dossier_items",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("added", sa.String(length=24), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
        ),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("dossier_items", schema=None) as batch_op:
        batch_op.create_index("dossier_items_dossier", ["dossier_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dossier_items", schema=None) as batch_op:
        batch_op.drop_index("dossier_items_dossier")

    op.drop_table("dossier_items")
    op.drop_table("dossiers")
    with op.batch_alter_table("destruction_items", schema=None) as batch_op:
        batch_op.drop_index("destruction_items_destruction")

    op.drop_table("destruction_items")
    op.drop_table("destructions")
