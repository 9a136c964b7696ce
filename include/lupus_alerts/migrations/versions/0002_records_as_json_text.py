"""records as json, not jsonb, on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 14:10:00

`papers.record` and `paper_sources.record` are written whole and read whole, never queried
inside but for one `->>` on a handful of title-match candidates. PostgreSQL's `json` keeps the
text as sent: no conversion to the binary form on every write, none back to text on every
read, which the upsert of every batch pays for (docs/dedupe.md, Performance). SQLite stores
JSON as text either way: nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("papers", "record"), ("paper_sources", "record"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json USING {column}::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
