"""PubMed XML (EFetch `db=pubmed&retmode=xml`) to `Paper`s, and the PubMed ingest of one window.

The parser streams with lxml `iterparse`, clearing each record once it is read, so memory stays
flat however large the file. It never loads the DTD, never touches the network and never expands
entities: EFetch files declare a remote DTD that must not be fetched. Element names and their
meaning follow NLM's PubMed DTD (pubmed_250101.dtd): `PubmedArticleSet` holds `PubmedArticle`,
`PubmedBookArticle` and `DeleteCitation`; a bare `PubmedArticle` document is read as well.

A record that cannot be read is yielded as a `ParseProblem` (PMID and reason) and skipped; a
batch never fails because of one record. That includes a record libxml2 refuses to parse (not
well-formed, nested deeper than 256 levels, a text node over 10 MB; XML_PARSE_HUGE stays off):
the stream cannot go on past it, so the rest of the document is cut into records by their tags
and each is parsed alone (when the source can be read again: bytes, a path, a seekable file).

The ingest half (`ingest_window`) searches a window (chosen by `pipeline.windows`, widened by
the overlap: `search_window`) with the E-utilities client (`lupus_alerts.eutils`), upserts the
papers and advances the `pubmed` watermark (`store.advance_watermark`) once all are stored.

The package, one module per concept (docs/architecture.md): `items` (what the parser yields
besides a Paper, and its error), `fields` (one field's text, DOI and dates), `parts` (a record's
authors, abstract, MeSH, notices and identifiers), `record` (one record element to a Paper),
`stream` (the document, record by record, within libxml2's limits, and the salvage after a bad
record), `window` (the search's creation-date range and the watermark's name) and `ingest` (one window
searched, fetched, parsed and upserted). See docs/pubmed.md.
"""

from lupus_alerts.pubmed.fields import MATHML_NS, parse_medline_date, parse_pub_date
from lupus_alerts.pubmed.ingest import MAX_PROBLEMS_REPORTED, ingest_window
from lupus_alerts.pubmed.items import DeletedCitation, ParseProblem, PubmedItem, PubmedParseError
from lupus_alerts.pubmed.parts import NOTICE_REFTYPES, RETRACTED_TYPE
from lupus_alerts.pubmed.record import PUBMED_URL, parse_article, parse_book_article, parse_record
from lupus_alerts.pubmed.stream import parse_pubmed, parse_pubmed_bytes, record_spans
from lupus_alerts.pubmed.window import WATERMARK_NAME, search_window

__all__ = [
    "MATHML_NS",
    "MAX_PROBLEMS_REPORTED",
    "NOTICE_REFTYPES",
    "PUBMED_URL",
    "RETRACTED_TYPE",
    "WATERMARK_NAME",
    "DeletedCitation",
    "ParseProblem",
    "PubmedItem",
    "PubmedParseError",
    "ingest_window",
    "parse_article",
    "parse_book_article",
    "parse_medline_date",
    "parse_pub_date",
    "parse_pubmed",
    "parse_pubmed_bytes",
    "parse_record",
    "record_spans",
    "search_window",
]
