"""Journal feeds: fetch a publisher's RSS/Atom politely, parse it safely, turn items into Papers.

Two layers, kept apart so the parser is testable on bytes alone:

- `parse_feed_bytes` is pure: a refusal pre-scan (oversized bodies, XML entity declarations),
  then `feedparser.parse` on the bytes with the response headers, then one `Paper` per item
  (DOI found in the publisher's usual places, HTML reduced to text, authors split, dates parsed)
  and, for general journals, the lupus relevance filter.
- `poll_feed` does the I/O for one configured feed: a conditional GET with `requests` (ETag /
  Last-Modified kept in `store.feed_state`), a total deadline and a size cap while streaming,
  redirects recorded, papers upserted, and the outcome stored. A feed failure is recorded and
  returned, never raised: one broken publisher must not stop the others.

The package, one module per concept (docs/architecture.md): `errors` (the `FeedError`s),
`fetch` (the HTTP exchange), `parse` (one document: pre-scan, feedparser, which items are kept),
`extract` (one item to one Paper: DOI, link, abstract, key), `fields` (one field's text: HTML,
citation lines, authors, dates), `state` (`FeedOutcome` and the `feed_state` row) and `poll`
(fetch, parse, upsert and record, for one feed or many). The entity expansion the pre-scan
relies on is `lupus_alerts.feed_entities`.

Decisions and the publisher formats are documented in docs/feeds.md.
"""

from lupus_alerts.feeds.errors import FeedError, FeedTooLargeError, UnsafeFeedError
from lupus_alerts.feeds.extract import MAX_SOURCE_KEY, extract_doi, safe_link
from lupus_alerts.feeds.fetch import ACCEPT, FetchResult, fetch_feed
from lupus_alerts.feeds.fields import (
    html_to_text,
    parse_author,
    parse_date_text,
    split_authors,
    strip_citation_line,
)
from lupus_alerts.feeds.parse import (
    DC_NS,
    DEFAULT_MAX_BYTES,
    PRISM_NAMESPACES,
    FeedParseResult,
    parse_feed_bytes,
    refuse_unsafe_xml,
)
from lupus_alerts.feeds.poll import check_feed, check_feeds, poll_feed, poll_feeds
from lupus_alerts.feeds.state import FeedOutcome

__all__ = [
    "ACCEPT",
    "DC_NS",
    "DEFAULT_MAX_BYTES",
    "MAX_SOURCE_KEY",
    "PRISM_NAMESPACES",
    "FeedError",
    "FeedOutcome",
    "FeedParseResult",
    "FeedTooLargeError",
    "FetchResult",
    "UnsafeFeedError",
    "check_feed",
    "check_feeds",
    "extract_doi",
    "fetch_feed",
    "html_to_text",
    "parse_author",
    "parse_date_text",
    "parse_feed_bytes",
    "poll_feed",
    "poll_feeds",
    "refuse_unsafe_xml",
    "safe_link",
    "split_authors",
    "strip_citation_line",
]
