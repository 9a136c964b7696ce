"""a random link key per subscriber, for links and Message-IDs that are never reused

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00

On SQLite a deleted subscriber's id went to the next subscriber, so an old unsubscribe link
(signed over the id) acted on the newcomer, and the newcomer's digest got the old Message-ID.
Links and Message-IDs now carry `link_key`, 128 random bits per subscriber, unique, never
reused. Existing subscribers get a key and `legacy_links`: the unsubscribe links already in
their mailboxes (signed over the id) keep working for them, and for no one added later.
`links_sent_at` throttles the "send me a fresh link" mail.

No table rebuild: on SQLite a batch rebuild of `subscribers` would drop the table, and with
foreign keys on, cascade-delete every subscriber's topics and ledger rows. Columns are added
with ALTER TABLE (a NOT NULL column needs a default there, which PostgreSQL then drops), and
uniqueness is a unique index.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("link_key", sa.String(32), nullable=False, server_default=""))
    op.add_column(
        "subscribers", sa.Column("legacy_links", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("subscribers", sa.Column("links_sent_at", sa.DateTime(), nullable=True))
    conn = op.get_bind()
    subs = sa.table("subscribers", sa.column("id"), sa.column("link_key"), sa.column("legacy_links"))
    ids = [r[0] for r in conn.execute(sa.select(subs.c.id))]
    if ids:
        conn.execute(
            sa.update(subs)
            .where(subs.c.id == sa.bindparam("b_id"))
            .values(link_key=sa.bindparam("b_key"), legacy_links=sa.true()),
            [{"b_id": i, "b_key": secrets.token_urlsafe(16)} for i in ids],
        )
    if conn.dialect.name == "postgresql":
        op.alter_column("subscribers", "link_key", server_default=None)
    op.create_index("ix_subscribers_link_key", "subscribers", ["link_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_subscribers_link_key", table_name="subscribers")
    for column in ("links_sent_at", "legacy_links", "link_key"):
        # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): see the docstring on rebuilds.
        op.execute(f"ALTER TABLE subscribers DROP COLUMN {column}")
