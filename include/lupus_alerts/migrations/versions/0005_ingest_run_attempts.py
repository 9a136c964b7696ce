"""one ingest_runs row per attempt: a rerun adds to a run's record instead of overwriting it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 04:40:00

Until now a retried or cleared task overwrote its (run_id, source) row, so clearing a run that
had announced 42 papers left "new papers 0" as the run's whole history (issue 14, defect 2).
Each attempt is now its own row, numbered per (run_id, source); existing rows are attempt 1.
`ingest_runs` has no foreign keys in either direction, so SQLite's batch rebuild (needed to
swap the unique constraint) cannot cascade anywhere.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.drop_constraint("uq_ingest_runs_run_id_source", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ingest_runs_run_id_source_attempt", ["run_id", "source", "attempt"]
        )


def downgrade() -> None:
    # Keeps each (run_id, source)'s last attempt, which is what the table held before.
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "DELETE FROM ingest_runs WHERE attempt < "
            "(SELECT MAX(r.attempt) FROM ingest_runs r"
            " WHERE r.run_id = ingest_runs.run_id AND r.source = ingest_runs.source)"
        )
    )
    with op.batch_alter_table("ingest_runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ingest_runs_run_id_source_attempt", type_="unique")
        batch_op.create_unique_constraint("uq_ingest_runs_run_id_source", ["run_id", "source"])
        batch_op.drop_column("attempt")
