"""Receive and register, handover and the annual return: deliveries, hand-overs and
their items and desk sightings, return campaigns with their holders and items

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("received", sa.String(length=24), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=True),
        sa.Column("note_no", sa.String(length=200), nullable=True),
        sa.Column("note_count", sa.Integer(), nullable=False),
        sa.Column("meeting", sa.String(length=200), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("documents", sa.Text(), nullable=False),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "handovers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_id", sa.String(length=64), nullable=False),
        sa.Column("to_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("closed", sa.String(length=24), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_id"],
            ["people.id"],
        ),
        sa.ForeignKeyConstraint(
            ["to_id"],
            ["people.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index("handovers_state", ["state", "from_id"], unique=False)

    op.create_table(
        "handover_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("done", sa.String(length=24), nullable=True),
        sa.Column("from_badge", sa.String(length=64), nullable=True),
        sa.Column("to_badge", sa.String(length=64), nullable=True),
        sa.Column("via", sa.String(length=120), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handover_items", schema=None) as batch_op:
        batch_op.create_index("handover_items_handover", ["handover_id"], unique=False)
        batch_op.create_index("handover_items_document", ["document_id", "state"], unique=False)

    op.create_table(
        "handover_sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handover_id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("ts", sa.String(length=24), nullable=False),
        sa.Column("event_id", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handover_sightings", schema=None) as batch_op:
        batch_op.create_index(
            "handover_sightings_room", ["handover_id", "room_id", "ts"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created", sa.String(length=24), nullable=False),
        sa.Column("completed", sa.String(length=24), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "campaign_holders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("signed", sa.String(length=24), nullable=True),
        sa.Column("signed_by", sa.String(length=64), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "holder"),
    )
    op.create_table(
        "campaign_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("returned", sa.String(length=24), nullable=True),
        sa.Column("returned_by", sa.String(length=64), nullable=True),
        sa.Column("audit_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["campaign_holders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "document_id"),
    )
    with op.batch_alter_table("campaign_items", schema=None) as batch_op:
        batch_op.create_index("campaign_items_document", ["document_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("campaign_items", schema=None) as batch_op:
        batch_op.drop_index("campaign_items_document")

    op.drop_table("campaign_items")
    op.drop_table("campaign_holders")
    op.drop_table("campaigns")
    with op.batch_alter_table("handover_sightings", schema=None) as batch_op:
        batch_op.drop_index("handover_sightings_room")

    op.drop_table("handover_sightings")
    with op.batch_alter_table("handover_items", schema=None) as batch_op:
        batch_op.drop_index("handover_items_document")
        batch_op.drop_index("handover_items_handover")

    op.drop_table("handover_items")
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index("handovers_state")

    op.drop_table("handovers")
    op.drop_table("deliveries")
