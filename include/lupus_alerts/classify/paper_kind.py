"""What kind of paper it is, as far as its words say: a case report, a review, a child's age."""

from __future__ import annotations

import re

from lupus_alerts.models import Paper
from lupus_alerts.phrases import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, Doc, clip

# "a 16-year-old girl", "13-year-old", "a 9 year old boy": a child in a case report.
# The first digit is matched before the word boundary is checked behind it ("\b\d" in the
# other order), so that the engine skips in C from digit to digit.
_AGE = re.compile(r"(\d(?<!\w\d)\d?)[- ](?:year|yr)s?[- ](?:old\b|boy\b|girl\b)", re.I)
# On ASCII text ASCII digits and word characters are all there are, and testing a character
# range is cheaper than asking the Unicode database: each pattern over the title and abstract
# has an ASCII twin that finds the same matches there.
_AGE_ASCII = re.compile(_AGE.pattern, re.I | re.A)
PAEDIATRIC_AGE_LIMIT = 18
AGE_WEIGHT = 1.0


# "case report", "we describe a": found from the space after the first word, which the engine
# finds in C, with the first word checked behind it; "a 45-year-old", "6-month-old" from the
# first digit (see `_AGE`).
_CASE_REPORT_WORDS = re.compile(
    r" (?:(?<=\bcase )(?:report|series|presentation)\b"
    r"|(?<=\bwe )(?:report|describe|present) (?:a|an|the|two|three)\b)",
    re.I,
)
_CASE_REPORT_AGE = re.compile(r"\d(?<!\w\d)\d{0,2}[- ](?:year|month)s?[- ]old\b", re.I)
_CASE_REPORT_WORDS_ASCII = re.compile(_CASE_REPORT_WORDS.pattern, re.I | re.A)
_CASE_REPORT_AGE_ASCII = re.compile(_CASE_REPORT_AGE.pattern, re.I | re.A)
_REVIEW = re.compile(r"\b(?:review|meta-analys[ie]s|meta analys[ie]s|overview|perspective)\b", re.I)


def _paper_text(paper: Paper) -> str:
    """The title and abstract as read (see `MAX_TITLE_CHARS`), for the patterns over both."""
    return f"{clip(paper.title or '', MAX_TITLE_CHARS)} {clip(paper.abstract or '', MAX_ABSTRACT_CHARS)}"


def _is_case_report(text: str, lowered: str) -> bool:
    """`text` reads as a case report: "case report", "we describe a", "a 45-year-old".
    `lowered` is `text.lower()`: without "year" or "month" in it, no age can match (no other
    character matches these letters ignoring case), and the age pattern is not run."""
    ascii = text.isascii()
    if (_CASE_REPORT_WORDS_ASCII if ascii else _CASE_REPORT_WORDS).search(text):
        return True
    if "year" not in lowered and "month" not in lowered:
        return False
    return (_CASE_REPORT_AGE_ASCII if ascii else _CASE_REPORT_AGE).search(text) is not None


def _paper_features(paper: Paper, abstract_doc: Doc, text: str, lowered: str) -> dict[str, float]:
    """What kind of paper it is, as far as its words say: a case report, a review. `text` is
    `_paper_text(paper)`, `lowered` the same in lower case."""
    title = clip(paper.title or "", MAX_TITLE_CHARS)
    return {
        "case_report": float(_is_case_report(text, lowered)),
        "review": float(bool(_REVIEW.search(title))),
        "sentences": float(len(abstract_doc.sent_start)),
    }


def _child_age(text: str, lowered: str) -> int | None:
    """The first age under `PAEDIATRIC_AGE_LIMIT` written as "9-year-old", "12 yr old girl" in
    `text`, if any. `lowered` is `text.lower()`: without "year" or "yr" in it the age pattern
    cannot match (no other character matches these letters ignoring case)."""
    if "year" not in lowered and "yr" not in lowered:
        return None
    for m in (_AGE_ASCII if text.isascii() else _AGE).finditer(text):
        age = int(m.group(1))
        if age < PAEDIATRIC_AGE_LIMIT:
            return age
    return None
