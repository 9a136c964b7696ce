"""partial index of the title keys of papers stored without a DOI

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:05:00

A record that carries a DOI but matched no paper by it can only be a paper stored without a
DOI, so the upsert looks its title keys up among those alone (dedupe.match._link_by_title): a small
index instead of probes into the one over every paper.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_papers_title_key_doi_less",
            ["title_key"],
            unique=False,
            sqlite_where=sa.text("doi IS NULL"),
            postgresql_where=sa.text("doi IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index("ix_papers_title_key_doi_less")
