"""jobs: indexes in the history's order, so the newest jobs come without sorting them all,
and by environment, so an environment's last use is one look-up

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 17:00:00
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_created_id", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_owner_created_id", "jobs", ["owner_id", "created_at", "id"])
    op.create_index("ix_jobs_env_created", "jobs", ["env", "created_at"])
    op.drop_index("ix_jobs_owner_created", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_owner_created", "jobs", ["owner_id", "created_at"])
    op.drop_index("ix_jobs_owner_created_id", table_name="jobs")
    op.drop_index("ix_jobs_created_id", table_name="jobs")
    op.drop_index("ix_jobs_env_created", table_name="jobs")
