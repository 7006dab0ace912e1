"""login throttle per account, per client address, and per account and address

Failed logins were counted per user name only, so anyone could lock an account for everyone.
The table gains an address column in its key: rows are kept per account (address '*'), per
client address (username '*') and per pair. Existing counts become the accounts' rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = {
    "username": sa.String(),
    "failures": sa.Integer(),
    "window_start": sa.DateTime(),
    "locked_until": sa.DateTime(),
}


def _columns(with_address: bool) -> list[sa.Column[Any]]:
    columns = [sa.Column("username", sa.String(length=255), nullable=False)]
    if with_address:
        columns.append(
            sa.Column("address", sa.String(length=64), nullable=False, server_default="*")
        )
    return [
        *columns,
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
    ]


def _recreate(with_address: bool) -> None:
    columns: list[Any] = [sa.column(n, kind) for n, kind in COLUMNS.items()]  # type: ignore[arg-type]
    old = sa.table("login_throttle", *columns)
    query = sa.select(*old.c)
    if not with_address:  # downgrade: keep only the accounts' rows
        query = query.where(sa.text("address = '*'"))
    rows = [dict(r._mapping) for r in op.get_bind().execute(query)]
    op.drop_table("login_throttle")
    keys = ["username", "address"] if with_address else ["username"]
    table = op.create_table(
        "login_throttle",
        *_columns(with_address),
        sa.PrimaryKeyConstraint(*keys, name=op.f("pk_login_throttle")),
    )
    if rows:
        op.bulk_insert(table, [dict(r, address="*") if with_address else r for r in rows])


def upgrade() -> None:
    _recreate(with_address=True)


def downgrade() -> None:
    _recreate(with_address=False)
