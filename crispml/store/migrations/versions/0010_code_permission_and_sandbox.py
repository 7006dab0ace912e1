"""code permission, per-user network, job mounts for the sandbox

The notebook permission becomes the permission to run code (job commands, notebooks); users get
an outbound-network flag; a job keeps the paths its sandbox mounts besides the usual ones (the
dataset versions and models it was given, read-only; a notebook's own folder, read-write).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("notebook", new_column_name="code")
        batch.add_column(
            sa.Column("network", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("mounts", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("mounts")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("network")
        batch.alter_column("code", new_column_name="notebook")
