"""A subscriber's digest: which papers it holds (selection) and how it reads (rendering).

Selection (`build_digest`): the lupus papers announced in (subscriber.cursor, announce_to] that
carry at least one of the subscriber's topics, each shown once under its best (highest-scoring)
chosen topic with its other tags beside it, ordered by score then date; at most
`subscriber.max_papers` of them, the rest summarised per topic with a link to the full list; and
an "Updates" section for retractions, errata and concerns numbered in (update_cursor, update_to]
about papers the subscriber was already sent. Rules and reasons: docs/digest.md.

Rendering (`render_html`, `render_text`, `render`) is pure: plain view-model dataclasses in,
strings out, so it can be tested and benchmarked without a database. The HTML template's static
stylesheet is inlined into the template source once, when the template is first loaded (with
css-inline), so no message pays for CSS inlining.

Modules: `selection` (the window of papers and updates, and one subscriber's pick from it),
`views` (the view models the templates see, and the built `Digest`), `formatting` (how each
field reads, and the length caps), `presentation` (a selection turned into a `DigestView`),
`rendering` (Jinja2 templates in `lupus_alerts/templates/`, CSS inlined once, per-paper cache),
`build` (`build_digest`: all of it for one subscriber, within the HTML size budget).
"""

from __future__ import annotations

from lupus_alerts.digest.build import HTML_BUDGET_BYTES, build_digest, placeholder_links
from lupus_alerts.digest.formatting import (
    AUTHOR_MAX_CHARS,
    EVIDENCE_LINE_MAX_CHARS,
    EVIDENCE_MAX_CHARS,
    EVIDENCE_OTHER,
    EVIDENCE_PRIMARY,
    JOURNAL_MAX_CHARS,
    MAX_BADGES,
    SNIPPET_MAX_CHARS,
    SNIPPET_MAX_SENTENCES,
    SUBJECT_TOPICS,
    TITLE_MAX_CHARS,
    abstract_snippet,
    authors_text,
    display_journal,
    format_date,
    paper_url,
    period_text,
    subject_line,
    truncate_words,
)
from lupus_alerts.digest.presentation import (
    GENERAL_NAME,
    UPDATE_KIND_TEXT,
    build_view,
    iter_topic_choices,
    overflow_url,
    paper_view,
    reason_text,
    update_view,
)
from lupus_alerts.digest.rendering import (
    PAPER_CACHE_SIZE,
    TemplateError,
    inline_template_source,
    render,
    render_html,
    render_text,
)
from lupus_alerts.digest.selection import (
    GENERAL_LABEL,
    Candidate,
    Selection,
    UpdateCandidate,
    Window,
    load_window,
    select,
)
from lupus_alerts.digest.views import (
    BadgeView,
    Digest,
    DigestView,
    OverflowView,
    PaperView,
    SectionView,
    UpdateView,
)

__all__ = [
    "AUTHOR_MAX_CHARS",
    "EVIDENCE_LINE_MAX_CHARS",
    "EVIDENCE_MAX_CHARS",
    "EVIDENCE_OTHER",
    "EVIDENCE_PRIMARY",
    "GENERAL_LABEL",
    "GENERAL_NAME",
    "HTML_BUDGET_BYTES",
    "JOURNAL_MAX_CHARS",
    "MAX_BADGES",
    "PAPER_CACHE_SIZE",
    "SNIPPET_MAX_CHARS",
    "SNIPPET_MAX_SENTENCES",
    "SUBJECT_TOPICS",
    "TITLE_MAX_CHARS",
    "UPDATE_KIND_TEXT",
    "BadgeView",
    "Candidate",
    "Digest",
    "DigestView",
    "OverflowView",
    "PaperView",
    "SectionView",
    "Selection",
    "TemplateError",
    "UpdateCandidate",
    "UpdateView",
    "Window",
    "abstract_snippet",
    "authors_text",
    "build_digest",
    "build_view",
    "display_journal",
    "format_date",
    "inline_template_source",
    "iter_topic_choices",
    "load_window",
    "overflow_url",
    "paper_url",
    "paper_view",
    "period_text",
    "placeholder_links",
    "reason_text",
    "render",
    "render_html",
    "render_text",
    "select",
    "subject_line",
    "truncate_words",
    "update_view",
]
