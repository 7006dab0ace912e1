"""lists read a page at a time: saved work stores what each holds (a page reads no documents)
and has indexes in its list's order; the audit log has one by actor, for one user's events;
runs have one by status, for a project's succeeded runs and its active ones, and datasets one
by role, for a project's raw or prepared datasets, newest first, and by parent, for a dataset's
prepared versions; models one by owner and name, for the names of one owner's models

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 19:30:00
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _holds(document: str) -> str:
    """As crispml.core.saved_work.holds words it (kept here as it was at this revision)."""
    try:
        doc = json.loads(document)
        kinds = sorted({str(r["kind"]) for r in doc.get("refs", [])})
        count = len(doc.get("values", {}))
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""
    return ", ".join([*kinds, f"{count} value{'s' if count != 1 else ''}"])


def upgrade() -> None:
    with op.batch_alter_table("saved_work") as batch:
        batch.add_column(sa.Column("holds", sa.String(200), nullable=False, server_default=""))
    saved = sa.table(
        "saved_work", sa.column("id", sa.Integer), sa.column("document", sa.Text),
        sa.column("holds", sa.String),
    )  # fmt: skip
    connection = op.get_bind()
    for work_id, document in connection.execute(sa.select(saved.c.id, saved.c.document)).all():
        connection.execute(
            saved.update().where(saved.c.id == work_id).values(holds=_holds(document))
        )
    op.create_index("ix_saved_work_updated_id", "saved_work", ["updated_at", "id"])
    op.create_index(
        "ix_saved_work_owner_updated_id", "saved_work", ["owner_id", "updated_at", "id"]
    )
    op.create_index("ix_audit_events_actor_id", "audit_events", ["actor", "id"])
    op.create_index(
        "ix_runs_owner_project_status", "runs", ["owner_id", "project_id", "status", "created_at"]
    )
    op.create_index(
        "ix_datasets_owner_project_role",
        "datasets",
        ["owner_id", "project_id", "role", "created_at"],
    )
    op.create_index("ix_datasets_parent", "datasets", ["parent_id", "created_at"])
    op.create_index("ix_models_owner_name", "models", ["owner_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_models_owner_name", table_name="models")
    op.drop_index("ix_datasets_parent", table_name="datasets")
    op.drop_index("ix_datasets_owner_project_role", table_name="datasets")
    op.drop_index("ix_runs_owner_project_status", table_name="runs")
    op.drop_index("ix_audit_events_actor_id", table_name="audit_events")
    op.drop_index("ix_saved_work_owner_updated_id", table_name="saved_work")
    op.drop_index("ix_saved_work_updated_id", table_name="saved_work")
    with op.batch_alter_table("saved_work") as batch:
        batch.drop_column("holds")
