"""health: one row /healthz writes, so a database that cannot be written shows

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    health = op.create_table(
        "health",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("checked_at", sa.Float(), nullable=False, server_default="0"),
    )
    op.bulk_insert(health, [{"id": 1, "checked_at": 0.0}])


def downgrade() -> None:
    op.drop_table("health")
