"""L1: a bad date in a feed costs only that item's date, never the item or the feed.

`Mon, 01 Jan 99999999999999999999 00:00:00 GMT` made the standard library's RFC 822 parser raise
OverflowError, which no handler caught: the whole feed failed. The fuzz test below writes
arbitrary text into every date element the parser reads, in RSS 2.0, RSS 1.0 and Atom, and
checks that both items of the feed survive with a usable date.
"""

from __future__ import annotations

from datetime import date, datetime
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lupus_alerts.feeds import parse_date_text, parse_feed_bytes

SEEN_AT = datetime(2026, 11, 27, 6, 0)
DC = "http://purl.org/dc/elements/1.1/"
PRISM = "http://prismstandard.org/namespaces/basic/2.0/"

HOSTILE_DATES = [
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",  # OverflowError in email.utils
    "Mon, 01 Jan 99999999999999999999",
    "01 Jan 2024 99999999999999999999:00:00",
    "Mon, 01 Jan 2024 00:00:00 +99999999999999999999",  # a time zone past a C int
    "January 0000",  # year 0: ValueError from datetime.date
    "0000-00-00",
    "2024-13-45",
    "9999-12-31T23:59:59-23:59",
    "-1-01-01",
    "1e400",
    "",
]


def _rss(date_element: str, value: str) -> bytes:
    v = escape(value)
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<rss version="2.0" xmlns:dc="{DC}" xmlns:prism="{PRISM}"><channel><title>Lupus</title>'
        f"<item><title>Lupus nephritis outcomes</title><link>https://example.org/doi/10.1000/a</link>"
        f"<{date_element}>{v}</{date_element}></item>"
        f"<item><title>Cutaneous lupus</title><link>https://example.org/doi/10.1000/b</link>"
        f"<pubDate>Tue, 03 Dec 2024 10:00:00 GMT</pubDate></item>"
        f"</channel></rss>"
    ).encode()


def _atom(date_element: str, value: str) -> bytes:
    v = escape(value)
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Lupus</title><id>tag:example.org,2024:feed</id>"
        "<entry><title>Lupus nephritis outcomes</title><id>tag:example.org,2024:a</id>"
        f'<link href="https://example.org/doi/10.1000/a"/><{date_element}>{v}</{date_element}></entry>'
        "<entry><title>Cutaneous lupus</title><id>tag:example.org,2024:b</id>"
        '<link href="https://example.org/doi/10.1000/b"/><updated>2024-12-03T10:00:00Z</updated></entry>'
        "</feed>"
    ).encode()


DOCUMENTS = {
    "rss-pubDate": lambda v: _rss("pubDate", v),
    "rss-dc-date": lambda v: _rss("dc:date", v),
    "rss-prism-coverDate": lambda v: _rss("prism:coverDate", v),
    "rss-prism-publicationDate": lambda v: _rss("prism:publicationDate", v),
    "atom-published": lambda v: _atom("published", v),
    "atom-updated": lambda v: _atom("updated", v),
}


def _check_both_items_kept(data: bytes) -> None:
    result = parse_feed_bytes(data, seen_at=SEEN_AT)
    assert [p.doi for p in result.papers] == ["10.1000/a", "10.1000/b"], result.warnings
    first, second = result.papers
    assert isinstance(first.pub_date, date)  # parsed, or the day it was first seen
    assert second.pub_date == date(2024, 12, 3)  # the neighbour is untouched


@pytest.mark.parametrize("value", HOSTILE_DATES)
@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_a_hostile_date_costs_only_that_items_date(document: str, value: str) -> None:
    _check_both_items_kept(DOCUMENTS[document](value))


def test_an_overflowing_rfc822_year_falls_back_to_the_day_first_seen() -> None:
    result = parse_feed_bytes(_rss("pubDate", HOSTILE_DATES[0]), seen_at=SEEN_AT)
    first = result.papers[0]
    assert (first.pub_date, first.epub_date, first.pub_date_text) == (date(2026, 11, 27), None, None)


@pytest.mark.parametrize("value", HOSTILE_DATES)
def test_parse_date_text_never_raises(value: str) -> None:
    got = parse_date_text(value)
    assert got is None or isinstance(got, date)


# Text shaped like the formats the parser reads, with numbers of any size in every slot, and
# arbitrary text besides.
_NUMBER = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str), st.text("0123456789", max_size=25)
)
_WORD = st.sampled_from(
    ["Mon", "Jan", "January", "Sept", "Feb.", "GMT", "UT", "EST", "Z", "T", "+", "-", ":", ","]
)
_SHAPED = st.lists(st.one_of(_NUMBER, _WORD), min_size=1, max_size=10).map(" ".join)
_ISO_LIKE = st.lists(_NUMBER, min_size=1, max_size=6).map("-".join)
_XML_TEXT = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\ufffe\uffff"), max_size=40
)
DATE_TEXT = st.one_of(_SHAPED, _ISO_LIKE, _XML_TEXT)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=DATE_TEXT, document=st.sampled_from(sorted(DOCUMENTS)))
@example(value=HOSTILE_DATES[0], document="rss-pubDate")
def test_no_date_text_in_any_date_field_escapes_the_item(value: str, document: str) -> None:
    _check_both_items_kept(DOCUMENTS[document](value))


@settings(max_examples=300, deadline=None)
@given(DATE_TEXT)
def test_parse_date_text_returns_a_date_or_none_for_any_text(value: str) -> None:
    got = parse_date_text(value)
    assert got is None or isinstance(got, date)
