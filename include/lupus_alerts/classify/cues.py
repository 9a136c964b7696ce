"""What one cue mention is worth: the weights by where it was found, the drugs recognised by
their INN stem, inclusion criteria that earn nothing, and what is accumulated per label."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lupus_alerts.phrases import Doc, Hit

# What a cue counts for by where it was found (an abstract sentence by its section or place,
# see `sections.SECTION_FACTORS`).
TITLE_FACTOR = 2.0
KEYWORD_FACTOR = 1.0
JOURNAL_FACTOR = 1.0
MESH_MAJOR_FACTOR = 1.5
MESH_MINOR_FACTOR = 0.6
PUBTYPE_FACTOR = 1.0
QUALIFIER_MAJOR_FACTOR = 1.5
QUALIFIER_MINOR_FACTOR = 0.8
# WHO INN stems of drug classes used in lupus: monoclonal antibodies (-mab), fusion proteins
# (-cept), kinase inhibitors (-tinib), mTOR/calcineurin inhibitors (-limus), thalidomide
# analogues and cereblon modulators (-domide). A word with one of these endings names a drug,
# so a paper about a new agent is recognised without a list.
DRUG_STEMS = (
    "mab",  # monoclonal antibodies
    "cept",  # receptor fusion proteins
    "tinib",  # kinase inhibitors (baricitinib, deucravacitinib)
    "limus",  # mTOR and calcineurin inhibitors
    "domide",  # thalidomide analogues, cereblon modulators (iberdomide)
    "zomib",  # proteasome inhibitors (bortezomib)
    "xaban",  # factor Xa inhibitors (rivaroxaban, apixaban)
    "parin",  # heparins (enoxaparin)
    "gliflozin",  # SGLT2 inhibitors
    "leucel",  # autologous cell products (CAR-T)
    "prazole",  # proton pump inhibitors (a classic cause of drug-induced SCLE)
    "sartan",  # angiotensin receptor blockers
    "dronate",  # bisphosphonates
)
DRUG_STEM_MIN_LEN = 7
NO_LABEL = ""  # the payload label of a not_cues phrase
DRUG_STEM_WEIGHT = 0.5
DRUG_STEM_LABEL = "therapeutics"
NOT_DRUGS = frozenset({"concept", "concepts", "except", "accept", "intercept", "percept", "precept"})
# A drug named in the title is what the paper is about (guidelines 4.12: "a treatment named in
# a case report's title"), whatever its weight as a background mention in an abstract.
DRUG_TITLE_WEIGHT = 1.0
# Study-design words ("a population-based cohort", "randomised, placebo-controlled") say what
# kind of paper this is, and they are written in the methods; there they count in full, unlike
# the methods' inclusion criteria and measurements. Background sentences keep their low factor
# (they describe earlier studies).
DESIGN_SECTION_FACTOR = 1.0
DESIGN = "design"  # cue kinds (see Label.designs, Label.drugs)
DRUG = "drug"


@dataclass(slots=True)
class _Acc:
    """What was found for one label in one paper."""

    raw: float = 0.0
    # (source rank, contribution, evidence text): evidence lists the title first, then MeSH,
    # keywords, publication type, abstract, journal; within a source the largest first.
    parts: list[tuple[int, float, str]] = field(default_factory=list)
    # where the contributions came from (LOCATIONS), for the learned layer
    where: dict[str, float] = field(default_factory=dict)
    title_weight: float = 0.0  # the heaviest cue weight found in the title
    abstract_weight: float = 0.0  # ... and in the abstract
    sentences: set[int] = field(default_factory=set)  # abstract sentences with a cue
    cues: int = 0  # distinct cues in the abstract
    found: dict[str, set[str]] = field(default_factory=dict)  # cue -> where it was found
    title_at: int = -1  # the first title word of a cue of this label (-1: none)
    weak: set[str] = field(default_factory=set)  # evidence texts that quote only weak cues

    def add(self, where: str, c: float) -> None:
        self.where[where] = self.where.get(where, 0.0) + c


class _Accs(dict[str, _Acc]):
    """Each label's accumulator, made when something is first found for the label: a paper
    touches few of the fifteen labels, and the others' scores are all alike."""

    def __missing__(self, lid: str) -> _Acc:
        a = self[lid] = _Acc()
        return a


@dataclass(slots=True)
class LabelScore:
    """A label's score for one paper, whether or not it passed the threshold."""

    label: str
    score: float
    raw: float
    evidence: list[str]
    # what the learned layer reads (label_model.FEATURES); empty when not computed
    features: dict[str, float] = field(default_factory=dict)
    found: dict[str, set[str]] = field(default_factory=dict)  # text cue -> where it was found


# "patients fulfilling the 2019 EULAR/ACR classification criteria", "meeting the SLICC
# criteria": an inclusion criterion earns no label (guidelines 3.5).
_INCLUSION_WORDS = frozenset(
    {"fulfilling", "fulfilled", "fulfil", "fulfill", "fulfils", "fulfills", "meeting", "met", "satisfying"}
)
INCLUSION_WINDOW = 4


def _inclusion_criterion(doc: Doc, hit: Hit) -> bool:
    if hit.sentence not in doc.sentences_with(_INCLUSION_WORDS):
        return False
    s0 = doc.sent_start[hit.sentence]
    return any(w in _INCLUSION_WORDS for w in doc.lower[max(s0, hit.start - INCLUSION_WINDOW) : hit.start])


def _per_label(
    payloads: tuple[tuple[str, float, str, str], ...],
) -> Iterable[tuple[str, float, str, str]]:
    """A mention's payloads, one per label: "diagnostic" matches both "diagnostic" and
    "diagnos*", and the heavier cue (the first of equals) speaks for the label; not_cues count
    for none."""
    if len(payloads) == 1:
        return () if payloads[0][0] == NO_LABEL else payloads
    per_label: dict[str, tuple[float, str, str]] = {}
    for lid, w, phrase, kind in payloads:
        if lid == NO_LABEL:
            continue
        if lid not in per_label or w > per_label[lid][0]:
            per_label[lid] = (w, phrase, kind)
    return [(lid, w, phrase, kind) for lid, (w, phrase, kind) in per_label.items()]


def _is_drug_name(word: str) -> bool:
    """A lower-case word that names a drug by its INN stem (see `DRUG_STEMS`)."""
    return len(word) >= DRUG_STEM_MIN_LEN and word.endswith(DRUG_STEMS) and word not in NOT_DRUGS
