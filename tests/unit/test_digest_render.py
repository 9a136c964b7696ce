"""Rendering a digest from view models: escaping, links, names, snippets, flags, size, subject.

All records here are constructed in the test (no database); they follow the paper schema.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import lxml.html
import pytest

from lupus_alerts import digest as D
from lupus_alerts.testing import digest_samples as samples

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</td></tr></table><iframe src=//evil.example>",
]


def _candidate(pid: int, **record) -> D.Candidate:
    rec = {
        "title": f"Paper {pid}",
        "doi": f"10.1000/x{pid}",
        "journal": "Lupus",
        "authors": [{"last_name": "Smith", "initials": "J"}],
        "abstract": "One sentence here. Two sentences here. Three sentences here. Four here.",
    }
    rec.update(record)
    topics = rec.pop("_topics", {"nephrology": 0.9})
    classification = rec.pop("_classification", None)
    return D.Candidate(
        paper_id=pid,
        announce_no=pid,
        record=rec,
        classification=classification,
        is_retracted=bool(rec.get("is_retracted")),
        first_date=date(2026, 11, 20),
        topics=topics,
        title=rec["title"],
    )


def _view(papers: list[D.PaperView], **kw) -> D.DigestView:
    base = samples.sample_view(0, n_updates=0)
    counts = (("Nephrology", len(papers)),)
    return replace(
        base,
        sections=(D.SectionView("nephrology", "Nephrology", tuple(papers)),),
        paper_count=len(papers),
        topic_counts=counts,
        **kw,
    )


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_text_is_escaped_everywhere_in_the_html(payload):
    c = _candidate(
        1,
        title=f"Title {payload}",
        journal=f"J {payload}",
        authors=[{"last_name": payload, "initials": "X"}],
        abstract=f"Abstract {payload}. Next sentence.",
        _classification={"topics": [{"label": "nephrology", "score": 0.9, "evidence": [payload]}]},
    )
    view = _view([D.paper_view(c, "nephrology")], recipient_name=payload, preheader=payload)
    html = D.render_html(view)
    doc = lxml.html.document_fromstring(html)
    assert doc.xpath("//script|//img|//iframe") == []
    assert not [a for el in doc.iter() for a in getattr(el, "attrib", {}) if a.startswith("on")]
    # the payload reaches the reader as text, intact
    title_link = doc.xpath("//a[@class='t']")[0]
    assert title_link.text_content() == f"Title {payload}"
    assert "&lt;" in html or "&#34;" in html or "&#39;" in html
    text = D.render_text(view)
    assert f"Title {payload}" in text  # the plain-text part is not HTML-escaped


def test_title_links_to_doi_else_pubmed_else_journal_link():
    assert D.paper_url("10.1002/art.4242", "123", "https://j.example/a") == "https://doi.org/10.1002/art.4242"
    assert D.paper_url(None, "39876543", "https://j.example/a") == "https://pubmed.ncbi.nlm.nih.gov/39876543/"
    assert D.paper_url(None, None, "https://j.example/a") == "https://j.example/a"
    assert D.paper_url(None, None, "javascript:alert(1)") is None
    # a DOI with characters that would break out of an href is percent-encoded
    assert D.paper_url('10.1000/a"b<c>', None, None) == "https://doi.org/10.1000/a%22b%3Cc%3E"


def test_html_links_point_where_they_should():
    papers = [
        D.paper_view(_candidate(1, doi="10.1177/0961203324", pmid="1"), "nephrology"),
        D.paper_view(_candidate(2, doi=None, pmid="39000002"), "nephrology"),
        D.paper_view(_candidate(3, doi=None, pmid=None, url="https://journal.example/art/3"), "nephrology"),
        D.paper_view(_candidate(4, doi=None, pmid=None, url=None, title="No link at all"), "nephrology"),
    ]
    view = _view(papers)
    doc = lxml.html.document_fromstring(D.render_html(view))
    hrefs = [a.get("href") for a in doc.xpath("//a[@class='t']")]
    assert hrefs == [
        "https://doi.org/10.1177/0961203324",
        "https://pubmed.ncbi.nlm.nih.gov/39000002/",
        "https://journal.example/art/3",
    ]
    assert "No link at all" in doc.text_content()
    footer = {a.text_content(): a.get("href") for a in doc.xpath("//a[@class='fl']")}
    assert footer == {"Manage preferences": view.preferences_url, "Unsubscribe": view.unsubscribe_url}
    text = D.render_text(view)
    for url in [*hrefs, view.preferences_url, view.unsubscribe_url]:
        assert url in text


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "Alpha A"),
        (3, "Alpha A, Beta B, Gamma G"),
        (4, "Alpha A, Beta B, Gamma G, et al."),
        (12, "Alpha A, Beta B, Gamma G, et al."),
    ],
)
def test_first_three_authors_then_et_al(n, expected):
    names = [("Alpha", "A"), ("Beta", "B"), ("Gamma", "G")] + [(f"Other{i}", "O") for i in range(20)]
    authors = [{"last_name": ln, "initials": i} for ln, i in names[:n]]
    assert D.authors_text(authors) == expected


def test_group_authors_and_names_without_initials():
    authors = [{"collective_name": "SLICC Group"}, {"last_name": "Li", "fore_name": "Wei"}]
    assert D.authors_text(authors) == "SLICC Group, Li Wei"


def test_snippet_keeps_whole_sentences_and_abbreviations():
    text = (
        "Patients with SLE, e.g. those with nephritis, were followed for 8.5 years. "
        "Rates were lower vs. controls (Fig. 2). The effect was large. A fourth sentence."
    )
    s = D.abstract_snippet(text)
    assert s == (
        "Patients with SLE, e.g. those with nephritis, were followed for 8.5 years. "
        "Rates were lower vs. controls (Fig. 2). The effect was large."
    )


def test_snippet_stops_before_a_sentence_that_would_overflow():
    long = "Word " * 60
    text = f"Short first sentence. {long.strip()}. Third."
    assert D.abstract_snippet(text, max_chars=120) == "Short first sentence."


def test_snippet_of_one_huge_sentence_is_cut_at_a_word_boundary():
    text = ("antinuclear " * 100).strip() + "."
    s = D.abstract_snippet(text, max_chars=100)
    assert len(s) <= 100 and s.endswith("…")
    assert s[:-1].split(" ")[-1] == "antinuclear"


def test_structured_abstract_is_summarised_by_its_conclusions():
    sections = [
        {"label": "BACKGROUND", "category": "BACKGROUND", "text": "Background text. More."},
        {"label": "CONCLUSIONS", "category": "CONCLUSIONS", "text": "Belimumab helped. It was safe."},
    ]
    assert D.abstract_snippet("ignored", sections) == "Conclusions: Belimumab helped. It was safe."


def test_retracted_paper_is_flagged_in_both_parts_and_others_are_not():
    papers = [
        D.paper_view(_candidate(1, title="Fine paper"), "nephrology"),
        D.paper_view(_candidate(2, title="Withdrawn paper", is_retracted=True), "nephrology"),
    ]
    view = _view(papers)
    doc = lxml.html.document_fromstring(D.render_html(view))
    cells = doc.xpath("//td[@class='p']")
    assert ["RETRACTED" in td.text_content() for td in cells] == [False, True]
    flag = doc.xpath("//span[@class='rt']")[0]
    assert "background:#b42318" in flag.get("style")
    text = D.render_text(view)
    assert "[RETRACTED] Withdrawn paper" in text
    assert text.count("[RETRACTED]") == 1


def test_badges_show_best_topic_first_and_evidence():
    c = _candidate(
        1,
        _topics={"dermatology": 0.4, "nephrology": 0.8, "pregnancy": 0.6},
        _classification={
            "topics": [
                {
                    "label": "nephrology",
                    "score": 0.8,
                    "evidence": ["'lupus nephritis' in title", "MeSH Lupus Nephritis"],
                },
                {"label": "pregnancy", "score": 0.6, "evidence": ["'pregnancy' in abstract"]},
            ]
        },
    )
    p = D.paper_view(c, "nephrology")
    assert [(b.label, b.primary) for b in p.badges] == [
        ("nephrology", True),
        ("pregnancy", False),
        ("dermatology", False),
    ]
    html = D.render_html(_view([p]))
    doc = lxml.html.document_fromstring(html)
    assert [s.text_content() for s in doc.xpath("//span[@class='k' or @class='k2']")] == [
        "Nephrology",
        "Pregnancy",
        "Dermatology",
    ]
    why = doc.xpath("//div[@class='e']")[0].text_content()
    assert "'lupus nephritis' in title" in why and "'pregnancy' in abstract" in why


def _worst_case_view(n: int) -> D.DigestView:
    long_sentence = " ".join(["immunosuppression"] * 30) + "."
    evidence = ["x" * 200, "y" * 200, "z" * 200]
    topics = {"nephrology": 0.9, "dermatology": 0.8, "pregnancy": 0.7, "therapeutics": 0.6, "genetics": 0.5}
    cls = {"topics": [{"label": t, "score": s, "evidence": evidence} for t, s in topics.items()]}
    papers = [
        D.paper_view(
            _candidate(
                i,
                title="T" * 40 + " " + "lupus nephritis outcome " * 40,
                journal="Journal of " + "Clinical Rheumatology and Immunology " * 5,
                authors=[{"last_name": "Longsurname" * 3, "initials": "ABC"}] * 30,
                abstract=" ".join([long_sentence] * 10),
                doi="10.1016/j.example." + "9" * 40,  # longer than real DOIs
                is_retracted=True,
                _topics=topics,
                _classification=cls,
            ),
            "nephrology",
        )
        for i in range(1, n + 1)
    ]
    return _view(papers, updates=samples.sample_view(0, n_updates=3).updates, update_count=3)


def test_fifty_paper_digest_stays_under_gmails_102kb_clip():
    view = _worst_case_view(50)
    html = D.render_html(view)
    assert html.count('class="p"') == 50
    assert len(html.encode("utf-8")) < 102_000  # Gmail clips at "102 KB"; take the stricter reading


def test_subject_names_counts_topics_and_date():
    counts = [("Nephrology", 4), ("Dermatology", 3), ("Pregnancy", 3), ("Genetics", 2)]
    subject = D.subject_line(12, counts, date(2026, 11, 27))
    assert (
        subject == "Lupus digest · 12 new papers (Nephrology 4, Dermatology 3, Pregnancy 3, …) · 27 Nov 2026"
    )
    assert D.subject_line(1, [("Genetics", 1)], date(2026, 3, 5)) == (
        "Lupus digest · 1 new paper (Genetics 1) · 5 Mar 2026"
    )
    assert D.subject_line(0, [], date(2026, 3, 5), update_count=2) == (
        "Lupus digest · no new papers · 2 updates · 5 Mar 2026"
    )


def test_html_has_dark_mode_preheader_and_inlined_styles():
    html = D.render_html(samples.sample_view(6))
    doc = lxml.html.document_fromstring(html)
    metas = {m.get("name"): m.get("content") for m in doc.xpath("//meta[@name]")}
    assert metas["color-scheme"] == "light dark"
    style = " ".join(s.text_content() for s in doc.xpath("//style"))
    assert "prefers-color-scheme: dark" in style
    assert ".t{" not in style.split("@media")[0]  # plain rules were inlined, not kept
    pre = doc.xpath("//div[@class='pre']")[0]
    assert "display:none" in pre.get("style")
    for link in doc.xpath("//a[@class='t']"):
        assert "color:#0b5cad" in link.get("style")
    wrap = doc.xpath("//table[contains(@class,'wrap')]")[0]
    assert "max-width:600px" in wrap.get("style")
    assert "{%" not in html and "{{" not in html and "<!--paper" not in html


def _styles(html: str) -> list[tuple[str, str | None, str | None]]:
    doc = lxml.html.document_fromstring(html)
    return [(el.tag, el.get("class"), el.get("style")) for el in doc.iter() if isinstance(el.tag, str)]


def test_load_time_inlining_matches_inlining_each_message():
    view = samples.sample_view(9, n_updates=2, overflow=4)
    assert _styles(D.render_html(view)) == _styles(samples.render_html_inlined_per_message(view))


def test_overflow_is_summarised_in_both_parts():
    view = samples.sample_view(4, overflow=7)
    html, text = D.render(view)
    assert "7 more papers" in html and view.overflow.url in html
    flat = " ".join(text.split())
    assert "7 more papers" in flat and view.overflow.url in flat
    assert f"({view.overflow.counts_text})" in flat


def test_plain_text_part_has_sections_updates_and_footer():
    view = samples.sample_view(8, n_updates=1)
    text = D.render_text(view)
    assert re.search(r"^== Nephrology.* \(\d+\) ==$", text, re.M)
    assert "== Updates to papers you received (1) ==" in text
    assert "Retracted: " in text
    assert "<" not in text.replace("<>", "")
    assert max(len(line) for line in text.splitlines() if "http" not in line) <= 110


def test_rendering_is_deterministic_and_cache_does_not_leak_between_views():
    a = samples.sample_view(5)
    b = replace(a, recipient_name="Someone Else")
    ha1, hb, ha2 = D.render_html(a), D.render_html(b), D.render_html(a)
    assert ha1 == ha2 and ha1 != hb


@pytest.mark.parametrize(
    ("nlm", "shown"),
    [
        ("Kidney international", "Kidney International"),
        ("Arthritis & rheumatology (Hoboken, N.J.)", "Arthritis & Rheumatology"),
        ("Annals of the rheumatic diseases", "Annals of the Rheumatic Diseases"),
        ("Rheumatology (Oxford, England)", "Rheumatology"),
        ("Nature reviews. Rheumatology", "Nature Reviews. Rheumatology"),
        ("RMD open", "RMD Open"),
        # cased by their publishers: left alone
        ("Lupus Science & Medicine", "Lupus Science & Medicine"),
        ("npj Digital Medicine", "npj Digital Medicine"),
        ("The Lancet. Rheumatology", "The Lancet. Rheumatology"),
        (
            "Journal of the American Society of Nephrology : JASN",
            "Journal of the American Society of Nephrology : JASN",
        ),
        ("BMJ (Clinical research ed.)", "BMJ (Clinical research ed.)"),
    ],
)
def test_journal_names_show_as_readers_know_them_not_in_nlm_sentence_case(nlm: str, shown: str) -> None:
    from lupus_alerts.digest import display_journal

    assert display_journal(nlm) == shown
