"""The default PubMed query: it names every lupus-erythematosus concept and guards its exclusions.

PubMed cannot be reached from here, so these check the query's construction; the reasoning and
the hit counts it was designed against are in docs/pubmed-query.md.
"""

from __future__ import annotations

import re

import pytest

from lupus_alerts.config import DEFAULT_PUBMED_QUERY as Q


def _top_level_not(q: str) -> tuple[str, str]:
    """Split `(P) NOT (X)` at the NOT that sits at parenthesis depth 1."""
    depth = 0
    for i, ch in enumerate(q):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 1 and q.startswith(" NOT ", i):
            return q[:i], q[i + 5 :]
    raise AssertionError("no top-level NOT")


def test_balanced_and_well_formed() -> None:
    assert Q.count("(") == Q.count(")")
    assert Q.count('"') % 2 == 0
    assert all(tag in {"Mesh", "tiab", "ti"} for tag in re.findall(r"\[(\w+)\]", Q))


@pytest.mark.parametrize(
    "concept",
    [
        '"Lupus Erythematosus, Systemic"[Mesh]',
        '"lupus nephritis"[tiab]',
        '"cutaneous lupus"[tiab]',
        '"discoid lupus"[tiab]',
        '"neonatal lupus"[tiab]',
        '"drug-induced lupus"[tiab]',
        '"neuropsychiatric lupus"[tiab]',
        '"Antiphospholipid Syndrome"[Mesh]',
    ],
)
def test_every_required_concept_is_searched(concept: str) -> None:
    positive, _exclusion = _top_level_not(Q)
    assert concept in positive


@pytest.mark.parametrize(
    "lookalike", ['"lupus vulgaris"[tiab]', '"lupus pernio"[tiab]', '"Canis lupus"[tiab]']
)
def test_lookalikes_are_excluded_only_without_lupus_erythematosus(lookalike: str) -> None:
    positive, exclusion = _top_level_not(Q)
    assert lookalike in exclusion and lookalike not in positive
    # the exclusion is itself "(look-alikes) NOT (indexed or titled as LE)", so a paper on
    # chilblain lupus versus lupus pernio that is about LE is kept
    inner_x, inner_keep = _top_level_not(exclusion.strip()[1:-1].join("()"))
    assert lookalike in inner_x
    assert '"lupus erythematosus"[ti]' in inner_keep


def test_bare_lupus_is_never_enough_on_its_own() -> None:
    positive, _ = _top_level_not(Q)
    # "lupus[tiab]" appears only ANDed with antiphospholipid terms
    assert positive.count("lupus[tiab]") == 1
    assert re.search(r"antiphospholipid\[tiab\]\) AND lupus\[tiab\]", positive)
