"""lupus_alerts.text: the one sentence splitter for prose, and how it differs from the
classifier's clause splitter (docs/decisions.md, "One copy of each helper")."""

from __future__ import annotations

from lupus_alerts.phrases import split_clauses
from lupus_alerts.text import split_sentences

# real: PMID 42334098's results, as PubMed has them
REAL = (
    "Hyposmia was more frequent in SLE (odds ratio = 1.42, 95% confidence interval 1.02-1.98; "
    "P = 0.038). Smell scores did not differ by sex."
)


def test_prose_sentences_do_not_end_at_a_semicolon_or_an_abbreviation() -> None:
    assert split_sentences(REAL) == [
        "Hyposmia was more frequent in SLE (odds ratio = 1.42, 95% confidence interval 1.02-1.98; "
        "P = 0.038).",
        "Smell scores did not differ by sex.",
    ]
    assert split_sentences("Patients vs. controls differed, e.g. in C3. Fig. 2 shows it.") == [
        "Patients vs. controls differed, e.g. in C3.",
        "Fig. 2 shows it.",
    ]


def test_the_classifier_scopes_its_cues_by_clause_so_it_splits_at_semicolons_too() -> None:
    assert [c.strip() for c in split_clauses(REAL)] == [
        "Hyposmia was more frequent in SLE (odds ratio = 1.42, 95% confidence interval 1.02-1.98;",
        "P = 0.038).",
        "Smell scores did not differ by sex.",
    ]
