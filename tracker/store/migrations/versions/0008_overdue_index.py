"""Open loans listed from their index alone

The overdue listing and the end-of-day check read every open loan due before a time,
in order. With the loan's own columns in the index, SQLite and PostgreSQL answer from
the index and visit only the documents' rows (about half the reads on a large ledger).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:40:00.000000
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ["closed", "due", "id", "document_id", "person_id", "opened", "kind"]


def upgrade() -> None:
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index("loans_open")
        batch_op.create_index("loans_open", COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index("loans_open")
        batch_op.create_index("loans_open", ["closed", "due"], unique=False)
