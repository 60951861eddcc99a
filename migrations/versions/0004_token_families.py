"""Refresh token families: when a refresh token was rotated away, and into
which family.

Rotation revokes the refresh token used with `rotated_at` set and `family`
naming the family of the new pair (the `fam` claim of the tokens of one
login); logout leaves both NULL. A reuse within REFRESH_REUSE_GRACE_SECONDS
of `rotated_at` is a client's retry; a later one revokes `family`, as a row
of its own keyed by the family id (a UUID, like a `jti`). Existing rows are
logouts or rotations from before families: NULL, so their reuse stays a
plain 401.

The downgrade drops the columns. Family rows stay, harmless (no token has
their id as its `jti`), but the code of before does not read the `fam`
claim, so it accepts the tokens of a revoked family again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # SQLite adds columns in place; batch mode keeps both databases on one path.
    with op.batch_alter_table("revoked_tokens") as batch:
        batch.add_column(sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("family", sa.String(length=36), nullable=True))


def downgrade():
    # SQLite: batch mode rebuilds the table without the columns (its rows,
    # key and index kept).
    with op.batch_alter_table("revoked_tokens") as batch:
        batch.drop_column("family")
        batch.drop_column("rotated_at")
