"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 10:43:38.829553
"""

# Exempt from the 80-line rule for functions (issue 19): a migration is frozen history, so
# `upgrade` stays exactly as it was generated and applied to existing stores; splitting it would
# change a file that must describe what already ran, for no behavioural gain.

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.create_table(
        "feed_state",
        sa.Column("feed_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("final_url", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_warning", sa.Text(), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("items_last", sa.Integer(), nullable=True),
        sa.Column("dois_last", sa.Integer(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("feed_id", name=op.f("pk_feed_state")),
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=True),
        sa.Column("window_end", sa.DateTime(), nullable=True),
        sa.Column(
            "stats",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_runs")),
        sa.UniqueConstraint("run_id", "source", name=op.f("uq_ingest_runs_run_id_source")),
    )
    op.create_table(
        "papers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("doi", sa.String(length=512), nullable=True),
        sa.Column("pmid", sa.String(length=16), nullable=True),
        sa.Column("pmcid", sa.String(length=24), nullable=True),
        sa.Column("title_key", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("journal", sa.String(length=512), nullable=True),
        sa.Column("pub_date", sa.Date(), nullable=True),
        sa.Column(
            "record",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("record_hash", sa.String(length=64), nullable=True),
        sa.Column("is_lupus", sa.Boolean(), nullable=True),
        sa.Column("relevance_score", sa.Float(), nullable=True),
        sa.Column(
            "classification",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("needs_classification", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_retracted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("announce_no", sa.BigInteger(), nullable=True),
        sa.Column("announced_at", sa.DateTime(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_papers")),
        sa.UniqueConstraint("announce_no", name=op.f("uq_papers_announce_no")),
        sa.UniqueConstraint("doi", name=op.f("uq_papers_doi")),
        sa.UniqueConstraint("pmid", name=op.f("uq_papers_pmid")),
    )
    with op.batch_alter_table("papers", schema=None) as batch_op:
        # partial: only papers waiting for the classifier (store.py says why)
        batch_op.create_index(
            "ix_papers_needs_classification",
            ["id"],
            unique=False,
            sqlite_where=sa.column("needs_classification").is_(True),
            postgresql_where=sa.column("needs_classification").is_(True),
        )
        batch_op.create_index(batch_op.f("ix_papers_title_key"), ["title_key"], unique=False)

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("all_topics", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("frequency", sa.String(length=16), server_default="daily", nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=True),
        sa.Column("max_papers", sa.Integer(), server_default="50", nullable=False),
        sa.Column("send_when_empty", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("update_cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("permanent_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email", name=op.f("uq_subscribers_email")),
    )
    op.create_table(
        "watermarks",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_watermarks")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("message_id", sa.String(length=256), nullable=False),
        sa.Column("announce_from", sa.BigInteger(), nullable=False),
        sa.Column("announce_to", sa.BigInteger(), nullable=False),
        sa.Column("update_from", sa.BigInteger(), nullable=False),
        sa.Column("update_to", sa.BigInteger(), nullable=False),
        sa.Column("paper_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_deliveries_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("subscriber_id", "period", name=op.f("uq_deliveries_subscriber_id_period")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_period_state", ["period", "state"], unique=False)

    op.create_table(
        "paper_sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("paper_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("source_key", sa.String(length=1024), nullable=False),
        sa.Column(
            "record",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("record_hash", sa.String(length=64), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_sources_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_sources")),
        sa.UniqueConstraint("source", "source_key", name=op.f("uq_paper_sources_source_source_key")),
    )
    with op.batch_alter_table("paper_sources", schema=None) as batch_op:
        batch_op.create_index("ix_paper_sources_paper_id", ["paper_id"], unique=False)

    op.create_table(
        "paper_topics",
        sa.Column("paper_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_topics_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("paper_id", "label", name=op.f("pk_paper_topics")),
    )
    with op.batch_alter_table("paper_topics", schema=None) as batch_op:
        batch_op.create_index("ix_paper_topics_label", ["label", "paper_id"], unique=False)

    op.create_table(
        "paper_updates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("paper_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("notice_key", sa.String(length=512), nullable=False),
        sa.Column(
            "notice",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("detected_at", sa.DateTime(), nullable=False),
        sa.Column("update_no", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_paper_updates_paper_id_papers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_updates")),
        sa.UniqueConstraint(
            "paper_id", "kind", "notice_key", name=op.f("uq_paper_updates_paper_id_kind_notice_key")
        ),
        sa.UniqueConstraint("update_no", name=op.f("uq_paper_updates_update_no")),
    )
    op.create_table(
        "subscriber_topics",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_topics_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "label", name=op.f("pk_subscriber_topics")),
    )

    # Counters exist from the start so concurrent first users never race to create them.
    op.bulk_insert(
        sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "announce", "value": 0}, {"name": "update", "value": 0}],
    )


def downgrade() -> None:

    op.drop_table("subscriber_topics")
    op.drop_table("paper_updates")
    with op.batch_alter_table("paper_topics", schema=None) as batch_op:
        batch_op.drop_index("ix_paper_topics_label")

    op.drop_table("paper_topics")
    with op.batch_alter_table("paper_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_paper_sources_paper_id")

    op.drop_table("paper_sources")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_period_state")

    op.drop_table("deliveries")
    op.drop_table("watermarks")
    op.drop_table("subscribers")
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_papers_title_key"))
        batch_op.drop_index("ix_papers_needs_classification")

    op.drop_table("papers")
    op.drop_table("ingest_runs")
    op.drop_table("feed_state")
    op.drop_table("counters")
