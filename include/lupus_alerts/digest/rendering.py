"""Rendering a `DigestView` to HTML and plain text with Jinja2 (pure: view in, strings out).

The templates are the package's `templates/digest.html.j2` and `templates/digest.txt.j2`. The
HTML template's static stylesheet is inlined into the template source once, when the template is
first loaded (with css-inline), so no message pays for CSS inlining; each paper's block is a
template of its own whose output is cached per `PaperView`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from lupus_alerts.digest.views import DigestView, PaperView

if TYPE_CHECKING:
    import jinja2

_JINJA_TOKEN = re.compile(r"\{[{%].*?[}%]\}", re.S)


class TemplateError(Exception):
    """A packaged template could not be prepared (a bug in the template, caught at load)."""


def _read_template(name: str) -> str:
    return resources.files("lupus_alerts").joinpath("templates", name).read_text(encoding="utf-8")


def inline_template_source(source: str) -> str:
    """Inline the template's <style> rules into its markup, once, before Jinja compiles it.

    Jinja control blocks in the HTML template sit inside HTML comments (`<!--{% if x %}-->`) so
    the HTML parser keeps them exactly where they are (bare text between table rows would be
    moved out of the table); @media rules (dark mode, small screens) stay in a <style> block.
    Raises TemplateError if inlining changed any Jinja tag.
    """
    import css_inline

    inliner = css_inline.CSSInliner(keep_at_rules=True, minify_css=True, load_remote_stylesheets=False)
    inlined = inliner.inline(source)
    if _JINJA_TOKEN.findall(inlined) != _JINJA_TOKEN.findall(source):
        raise TemplateError("CSS inlining altered a Jinja tag: keep Jinja out of tag names and quotes")
    return inlined.replace("<!--{%", "{%").replace("%}-->", "%}")


def _environment(autoescape: bool) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env


# Each paper's block is a template of its own, cut out of the (already inlined) document
# template between these markers, and its output is cached per PaperView: thousands of
# subscribers share the same few dozen papers, so most digests are assembled, not re-rendered.
_HTML_PAPER = re.compile(r"<!--paper-->(.*?)<!--/paper-->", re.S)
_TEXT_PAPER = re.compile(r"\{# paper #\}\n(.*?)\{# /paper #\}\n", re.S)
PAPER_CACHE_SIZE = 4096


def _split_paper(source: str, pattern: re.Pattern[str], call: str) -> tuple[str, str]:
    m = pattern.search(source)
    if m is None or len(pattern.findall(source)) != 1:
        raise TemplateError(f"the template must hold exactly one paper block ({pattern.pattern})")
    return source[: m.start()] + call + source[m.end() :], m.group(1)


@lru_cache(maxsize=1)
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    import markupsafe

    html_env = _environment(autoescape=True)
    text_env = _environment(autoescape=False)
    html_doc, html_paper = _split_paper(
        inline_template_source(_read_template("digest.html.j2")), _HTML_PAPER, "{{ paper_html(p) }}"
    )
    text_doc, text_paper = _split_paper(_read_template("digest.txt.j2"), _TEXT_PAPER, "{{ paper_text(p) }}")
    html_paper_t = html_env.from_string(html_paper)
    text_paper_t = text_env.from_string(text_paper)

    @lru_cache(maxsize=PAPER_CACHE_SIZE)
    def paper_html(p: PaperView) -> markupsafe.Markup:
        return markupsafe.Markup(html_paper_t.render(p=p))

    @lru_cache(maxsize=PAPER_CACHE_SIZE)
    def paper_text(p: PaperView) -> str:
        return text_paper_t.render(p=p)

    html_env.globals["paper_html"] = paper_html
    text_env.globals["paper_text"] = paper_text
    return html_env.from_string(html_doc), text_env.from_string(text_doc)


def render_html(view: DigestView) -> str:
    """The HTML part (styles inlined, user text escaped)."""
    return _templates()[0].render(v=view)


def render_text(view: DigestView) -> str:
    """The plain-text alternative."""
    return _templates()[1].render(v=view)


def render(view: DigestView) -> tuple[str, str]:
    """(html, text) for one digest view."""
    html, text = _templates()
    return html.render(v=view), text.render(v=view)
