"""Property: flattening inline markup keeps every character of text, in order."""

from __future__ import annotations

from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from lupus_alerts.models import Paper
from lupus_alerts.pubmed import parse_pubmed

INLINE = ["i", "b", "u", "sub", "sup"]
# Text pieces: letters, digits, spaces, XML-special characters and non-ASCII.
text = st.text(alphabet=st.sampled_from(list("aZ09 -<>&'\"αµ·₂")), max_size=8)


@st.composite
def mixed(draw: st.DrawFn, depth: int = 0) -> tuple[str, str]:
    """(XML fragment, its plain text) for random nested inline markup."""
    parts = draw(st.lists(st.one_of(text, st.just(None)), min_size=1, max_size=5))
    xml, plain = [], []
    for p in parts:
        if p is None and depth < 2:
            tag = draw(st.sampled_from(INLINE))
            inner_xml, inner_plain = draw(mixed(depth + 1))
            xml.append(f"<{tag}>{inner_xml}</{tag}>")
            plain.append(inner_plain)
        elif p is not None:
            xml.append(escape(p))
            plain.append(p)
    return "".join(xml), "".join(plain)


@settings(max_examples=200, deadline=None)
@given(mixed())
def test_title_text_survives_any_inline_markup(fragment: tuple[str, str]) -> None:
    xml, plain = fragment
    doc = (
        "<PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
        f"<ArticleTitle>{xml}</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    ).encode()
    (paper,) = list(parse_pubmed(doc))
    assert isinstance(paper, Paper)
    assert paper.title == " ".join(plain.split())
