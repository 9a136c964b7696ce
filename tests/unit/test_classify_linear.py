"""Classification work grows linearly with the text, and stops growing at the reading cap.

Work is counted, not timed: the number of Python line events (`sys.settrace`) that one
`Classifier.classify` call executes. A quadratic step (a per-hit rescan of its sentence, a
per-merge re-search of a growing sentence) makes doubling the text about quadruple the count;
linear work doubles it. The texts are constructed: one endless sentence full of cues and
lupus mentions, the shape that took 110 s for 761 KB before (issue 13).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytest

from lupus_alerts import relevance
from lupus_alerts.classify import Classifier
from lupus_alerts.models import Paper
from lupus_alerts.phrases import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, split_clauses

# One sentence (a "St." does not end one): lupus mentions and cues of several labels, and
# none of the words a sentence flag looks for, so a per-hit rescan would read it all each time.
UNIT = "lupus nephritis with proteinuria, pregnancy, hydroxychloroquine, seizures and SLE in St. Louis, "


def line_events(fn: Callable[[], object]) -> int:
    """How many Python lines `fn()` executes."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def paper(abstract: str, title: str = "Systemic lupus erythematosus") -> Paper:
    return Paper(source="test", source_key="linear", title=title, abstract=abstract)


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


def text_of(chars: int) -> str:
    return (UNIT * (chars // len(UNIT) + 1))[:chars]


def test_classifying_twice_the_text_costs_about_twice_the_work(clf: Classifier) -> None:
    small, large = text_of(4_000), text_of(8_000)
    assert len(large) <= MAX_ABSTRACT_CHARS  # both are read whole
    clf.classify(paper(small))  # warm the phrase tables' token caches
    ops_small = line_events(lambda: clf.classify(paper(small)))
    ops_large = line_events(lambda: clf.classify(paper(large)))
    assert ops_large / ops_small < 2.3, (ops_small, ops_large)


def test_relevance_on_twice_the_text_costs_about_twice_the_work() -> None:
    small, large = text_of(4_000), text_of(8_000)
    relevance.assess("Systemic lupus erythematosus", small)
    ops_small = line_events(lambda: relevance.assess("Systemic lupus erythematosus", small))
    ops_large = line_events(lambda: relevance.assess("Systemic lupus erythematosus", large))
    assert ops_large / ops_small < 2.3, (ops_small, ops_large)


def test_a_megabyte_title_and_abstract_cost_no_more_than_the_capped_text(clf: Classifier) -> None:
    megabyte = text_of(1_000_000)
    capped = paper(megabyte[:MAX_ABSTRACT_CHARS], title=megabyte[:MAX_TITLE_CHARS])
    huge = paper(megabyte, title=megabyte)
    clf.classify(capped)
    ops_capped = line_events(lambda: clf.classify(capped))
    ops_huge = line_events(lambda: clf.classify(huge))
    assert ops_huge <= ops_capped * 1.01, (ops_capped, ops_huge)
    assert clf.classify(huge) == clf.classify(capped)  # what lies past the cap is not read


def cpu_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    """The least CPU time `fn()` took in `repeat` runs (the least is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def test_sentence_splitting_past_many_abbreviations_is_linear() -> None:
    # "St." never ends a sentence, so every piece is merged into one growing sentence. The
    # work that used to grow with its square was inside the regex engine (re-searching the
    # whole sentence at each merge), which line events do not see: two sizes are compared by
    # CPU time instead (a ratio, not a time limit; quadratic work gives about 4).
    small, large = "St. Louis " * 20_000, "St. Louis " * 40_000
    ratio = cpu_seconds(lambda: split_clauses(large)) / cpu_seconds(lambda: split_clauses(small))
    assert ratio < 3.0, ratio
    assert split_clauses("St. Louis encephalitis. Next one.") == ["St. Louis encephalitis.", "Next one."]


def test_relevance_on_a_megabyte_costs_no_more_than_on_the_capped_text() -> None:
    megabyte = text_of(1_000_000)
    title = "Systemic lupus erythematosus"
    relevance.assess(title, megabyte[:MAX_ABSTRACT_CHARS])
    ops_capped = line_events(lambda: relevance.assess(title, megabyte[:MAX_ABSTRACT_CHARS]))
    ops_huge = line_events(lambda: relevance.assess(megabyte, megabyte))
    assert ops_huge <= ops_capped * 1.05, (ops_capped, ops_huge)


def feed_with_one_item(description: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>A journal</title>'
        "<item><title>Systemic lupus erythematosus and the kidney</title>"
        f"<link>https://example.org/a</link><description>{description}</description></item>"
        "</channel></rss>"
    ).encode()


def test_a_feed_poll_with_a_huge_item_grows_linearly_with_it() -> None:
    # the poll's relevance filter reads the item (feeds.parse_feed_bytes): a 580 KB item once
    # cost 44 s of CPU there; twice the item must cost about twice the work, not four times
    from lupus_alerts.feeds import parse_feed_bytes

    small, large = feed_with_one_item(text_of(200_000)), feed_with_one_item(text_of(400_000))
    parse_feed_bytes(small, filter_relevance=True)
    ops_small = line_events(lambda: parse_feed_bytes(small, filter_relevance=True))
    ops_large = line_events(lambda: parse_feed_bytes(large, filter_relevance=True))
    assert ops_large / ops_small < 2.3, (ops_small, ops_large)
    assert parse_feed_bytes(large, filter_relevance=True).kept == 1
