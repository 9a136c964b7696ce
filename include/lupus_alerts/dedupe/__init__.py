"""One paper, one record: match records from every source to stored papers and merge them.

`upsert_papers` is the only writer of `papers` and `paper_sources`. A record is matched to a
stored paper by, in order of strength, its own earlier arrival (same source and source key), its
normalised DOI, its PMID, and last its title key (normalised title + year, with the journal as
a tie-break). Every source's latest record is kept in `paper_sources`; the paper's record is
`merge_records` over all of them. Rules and reasons: docs/dedupe.md.

Concurrency: each batch runs in one transaction. SQLite serialises writers (BEGIN IMMEDIATE);
on PostgreSQL matched papers are locked FOR UPDATE in id order, and a concurrent writer that
inserted the same DOI/PMID/source key first makes our INSERT fail on the unique constraint, so
the batch is rolled back and redone, and on the second pass it finds and merges into that row.

The package, one module per step (docs/architecture.md): `keys` (title keys), `records` (the
merge rules, pure), `codec` (stored form and hash), `match`, `plan`, `upsert` (the main path:
match, plan, write), and the performance machinery it calls: `_bulk` (multi-row and COPY
writes), `_parallel` (forked writers on PostgreSQL), `_checkpoint` (SQLite WAL checkpoints).
"""

from lupus_alerts.dedupe.codec import decode_paper, encode_paper
from lupus_alerts.dedupe.keys import title_key
from lupus_alerts.dedupe.records import merge_records
from lupus_alerts.dedupe.stats import MergeError, UpsertStats
from lupus_alerts.dedupe.upsert import BATCH_SIZE, upsert_papers

__all__ = [
    "BATCH_SIZE",
    "MergeError",
    "UpsertStats",
    "decode_paper",
    "encode_paper",
    "merge_records",
    "title_key",
    "upsert_papers",
]
