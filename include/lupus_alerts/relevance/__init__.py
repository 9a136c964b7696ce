"""Is a paper about lupus, in the lupus-erythematosus sense?

The word "lupus" and the abbreviation "SLE" are both ambiguous. *Lupus vulgaris* is tuberculosis
of the skin, *lupus pernio* is sarcoidosis, *Canis lupus* is the wolf, "SLE" is also St. Louis
encephalitis and slit-lamp examination, and the lupus anticoagulant is a coagulation test done
in many patients who do not have lupus. And a paper on rheumatoid arthritis that excludes
patients with SLE, or compares with them, is not a lupus paper. `assess` looks at every
mention, discards the ones that mean something else or sit in an exclusion, negation or
comparison, and weighs what is left by where it was found (title, MeSH, keywords, abstract).

The result carries the evidence in words a clinician reads, so the decision can be audited.

The package (docs/architecture.md): `terms` (the vocabulary: lupus and its look-alikes,
journals, MeSH, other diseases, the words around a mention), `mentions` (each mention sorted by
what it says) and `decide` (the weights, the score, the evidence; `assess`).
"""

from lupus_alerts.relevance.decide import (
    ABSTRACT_CAP,
    ABSTRACT_FIRST,
    ABSTRACT_FIRST_PASSING,
    ABSTRACT_WEIGHT,
    DIFFERENTIAL_TITLE_PENALTY,
    DRUG_ABSTRACT_WEIGHT,
    DRUG_TITLE_WEIGHT,
    JOURNAL_WEIGHT,
    KEYWORD_WEIGHT,
    MESH_MAJOR_WEIGHT,
    MESH_MINOR_WEIGHT,
    OTHER_DISEASE_TITLE_PENALTY,
    THRESHOLD,
    TITLE_LIST_WEIGHT,
    TITLE_WEIGHT,
    Relevance,
    assess,
    assess_docs,
    is_lupus_journal,
)
from lupus_alerts.relevance.mentions import sle_expansion
from lupus_alerts.relevance.terms import (
    DIFFERENTIAL_WINDOW,
    LUPUS_JOURNALS,
    LUPUS_MESH,
    LUPUS_MESH_UIS,
    OVERLAP_WINDOW,
    POPULATION_AFTER_WINDOW,
    POPULATION_BEFORE_WINDOW,
    TRAP_MESH,
)

__all__ = [
    "ABSTRACT_CAP",
    "ABSTRACT_FIRST",
    "ABSTRACT_FIRST_PASSING",
    "ABSTRACT_WEIGHT",
    "DIFFERENTIAL_TITLE_PENALTY",
    "DIFFERENTIAL_WINDOW",
    "DRUG_ABSTRACT_WEIGHT",
    "DRUG_TITLE_WEIGHT",
    "JOURNAL_WEIGHT",
    "KEYWORD_WEIGHT",
    "LUPUS_JOURNALS",
    "LUPUS_MESH",
    "LUPUS_MESH_UIS",
    "MESH_MAJOR_WEIGHT",
    "MESH_MINOR_WEIGHT",
    "OTHER_DISEASE_TITLE_PENALTY",
    "OVERLAP_WINDOW",
    "POPULATION_AFTER_WINDOW",
    "POPULATION_BEFORE_WINDOW",
    "THRESHOLD",
    "TITLE_LIST_WEIGHT",
    "TITLE_WEIGHT",
    "TRAP_MESH",
    "Relevance",
    "assess",
    "assess_docs",
    "is_lupus_journal",
    "sle_expansion",
]
