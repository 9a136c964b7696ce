"""Constructed digest views and a reference renderer, for tests, benchmarks and design
previews (no database). Nothing here is used to send a digest."""

from __future__ import annotations

from datetime import date

from lupus_alerts.digest import (
    BadgeView,
    DigestView,
    OverflowView,
    PaperView,
    SectionView,
    UpdateView,
    abstract_snippet,
    subject_line,
)
from lupus_alerts.digest.rendering import _environment, _read_template
from lupus_alerts.subscribers import topic_labels, topic_short_name


def render_html_inlined_per_message(view: DigestView) -> str:
    """Reference path: render the raw template and inline CSS afterwards (tests, benchmarks)."""
    import css_inline

    src = _read_template("digest.html.j2").replace("<!--{%", "{%").replace("%}-->", "%}")
    src = src.replace("<!--paper-->", "").replace("<!--/paper-->", "")
    raw = _environment(autoescape=True).from_string(src).render(v=view)
    return css_inline.CSSInliner(keep_at_rules=True, minify_css=True, load_remote_stylesheets=False).inline(
        raw
    )


def sample_view(n_papers: int = 12, *, n_updates: int = 1, overflow: int = 0) -> DigestView:
    """A realistic constructed digest view (benchmarks, previews of the design); no database."""
    names = list(topic_labels().items())
    sections: list[SectionView] = []
    per = max(1, n_papers // 4) if n_papers else 0
    pid = 0
    while pid < n_papers:
        label, name = names[len(sections) % len(names)]
        papers = []
        for _ in range(min(per, n_papers - pid)):
            pid += 1
            other_label, _other = names[(len(sections) + 3) % len(names)]
            papers.append(
                PaperView(
                    paper_id=pid,
                    title=f"Constructed example {pid}: long-term outcomes of {label} involvement "
                    "in systemic lupus erythematosus, a multicentre cohort study",
                    url=f"https://doi.org/10.1000/example.{pid}",
                    journal="Lupus Science & Medicine",
                    date_text="24 Nov 2026",
                    authors_text="García-López M, O'Neil JP, Nakamura T, et al.",
                    snippet=abstract_snippet(_SAMPLE_ABSTRACT),
                    badges=(
                        BadgeView(
                            label, topic_short_name(label), (f'"{label}" in title', "MeSH major topic"), True
                        ),
                        BadgeView(other_label, topic_short_name(other_label), ("keyword match",), False),
                    ),
                    retracted=(pid == 3),
                )
            )
        sections.append(SectionView(label, name, tuple(papers)))
    updates = tuple(
        UpdateView(
            paper_id=1000 + i,
            kind="retraction_in",
            kind_text="Retracted",
            title="Constructed example: a retracted trial of a lupus therapy",
            url="https://pubmed.ncbi.nlm.nih.gov/12345678/",
            notice_text="Lupus. 2026;35(12):1501",
            notice_url="https://pubmed.ncbi.nlm.nih.gov/12345679/",
            serious=True,
        )
        for i in range(n_updates)
    )
    counts = tuple((topic_short_name(s.label), len(s.papers)) for s in sections)
    return DigestView(
        subject=subject_line(n_papers, counts, date(2026, 11, 27), update_count=n_updates),
        preheader="Constructed sample digest",
        period_text="27 Nov 2026",
        recipient_name="Dr Ada Example",
        recipient_email="ada@example.org",
        paper_count=n_papers,
        update_count=n_updates,
        sections=tuple(sections),
        updates=updates,
        overflow=OverflowView(
            overflow, ((topic_short_name(names[0][0]), overflow),), "https://lupus-alerts.example.org/papers"
        )
        if overflow
        else None,
        preferences_url="https://lupus-alerts.example.org/preferences?token=1.sample",
        unsubscribe_url="https://lupus-alerts.example.org/unsubscribe?token=1.sample",
        reason="You receive this daily digest because ada@example.org is subscribed to Lupus Alerts "
        "for all lupus topics.",
        home_url="https://lupus-alerts.example.org",
        topic_counts=counts,
    )


# Constructed text (not a real abstract) in the shape of one: used only by sample_view().
_SAMPLE_ABSTRACT = (
    "Systemic lupus erythematosus (SLE) affects many organs, e.g. the kidneys and skin, and its "
    "course varies widely between patients. We followed 1,204 adults with SLE for a median of 8.5 "
    "years (IQR 5.1-11.0) in 14 centres. Damage accrual was lower in patients treated early, vs. "
    "those treated late (HR 0.62, 95% CI 0.48-0.80). These findings support early treatment."
)
