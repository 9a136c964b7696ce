"""The words of the lupus check: the names of lupus and its look-alikes (and what each
look-alike really means), the lupus journals and MeSH descriptors, the other diseases, and the
words around a mention that make it a comparison, a differential diagnosis, an overlap
syndrome or a statement of who was studied."""

from __future__ import annotations

from lupus_alerts.phrases import PhraseSet

# Journals whose every paper is a lupus paper (normalised: lower case, "&" -> "and", no dots).
# As `text.normalize_journal` folds them: "Lupus Science & Medicine" -> "lupus science medicine".
LUPUS_JOURNALS = frozenset({"lupus", "lupus science medicine", "lupus sci med"})

# MeSH descriptors meaning lupus erythematosus (names as NLM spells them, with their UIs).
LUPUS_MESH = {
    "lupus erythematosus, systemic": "D008180",
    "lupus nephritis": "D008181",
    "lupus erythematosus, cutaneous": "D008178",
    "lupus erythematosus, discoid": "D008179",
    "lupus vasculitis, central nervous system": "D020945",
}
LUPUS_MESH_UIS = frozenset(LUPUS_MESH.values())
# MeSH descriptors of the look-alikes. When one is a major topic and the lupus descriptor is
# not, the lupus heading records a differential diagnosis (lupus vulgaris "mimicking discoid
# lupus"), not the subject.
TRAP_MESH = frozenset(
    {
        "lupus vulgaris",
        "tuberculosis, cutaneous",
        "lupus coagulation inhibitor",
        "wolves",
        "encephalitis, st. louis",
        "encephalitis virus, st. louis",
        "sarcoidosis",
    }
)

# What a mention is: "lupus" (spelled out), "abbrev" (SLE and friends: count alone), "weak"
# (LN, CLE, DLE: count only beside another lupus mention) or a trap (means something else).
_POSITIVE = {
    "lupus": [
        "lupus",
        "lupus erythematosus",
        "systemic lupus erythematosus",
        "systemic lupus erythematodes",
        "lupus erythematodes",
        "lupus nephritis",
        "lupus nephropathy",
        "lupus prone",
        "lupus mice",
        "neuropsychiatric lupus",
        "cutaneous lupus",
        "discoid lupus",
        "neonatal lupus",
        "drug induced lupus",
        "chilblain lupus",
        "lupus profundus",
        "lupus panniculitis",
        "lupus tumidus",
        "lupus erythematosus tumidus",
        "lupus erythematosus profundus",
    ],
    "abbrev": [
        "SLE",
        "NPSLE",
        "cSLE",
        "jSLE",
        "pSLE",
        "SCLE",
        "CCLE",
        "ACLE",
        "SLEDAI*",
        "BILAG",
        "SLICC",
        "CLASI",
    ],
    # Drugs licensed only for lupus: a trial of one is a lupus paper even if it never says so.
    "drug": ["anifrolumab", "voclosporin"],
    "weak": ["LN", "CLE", "DLE", "LE"],
    # "lupus-like disease" (a mouse model's, a monogenic one) is lupus; "lupus-like
    # manifestations" of a lymphoma are another disease resembling it (guidelines 2.2).
    "like": ["lupus like"],
}

# Each trap phrase, and what it actually means (said in the evidence).
_TRAPS = {
    "lupus vulgaris": "'lupus vulgaris' is tuberculosis of the skin, not lupus erythematosus",
    "lupus pernio": "'lupus pernio' is cutaneous sarcoidosis, not lupus erythematosus",
    "lupus miliaris disseminatus faciei": "'lupus miliaris disseminatus faciei' is a granulomatous "
    "facial rash, not lupus erythematosus",
    "lupus anticoagulant": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus anticoagulants": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus anticoagulant positive": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus like anticoagulant": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus inhibitor": "'lupus inhibitor' (lupus anticoagulant) is a coagulation test, not lupus itself",
    "lupus coagulation inhibitor": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "canis lupus": "'Canis lupus' is the wolf",
    "canis lupus familiaris": "'Canis lupus familiaris' is the dog as a species",
    "lupus molecular cloud*": "'Lupus' here is the constellation (astronomy)",
    "lupus cloud*": "'Lupus' here is the constellation (astronomy)",
    "lupus constellation": "'Lupus' here is the constellation (astronomy)",
    "lupus star forming": "'Lupus' here is the constellation (astronomy)",
    "lupus i iv": "'Lupus' here is the constellation (astronomy)",
    "lupoid hepatitis": "'lupoid hepatitis' is autoimmune hepatitis, not lupus",
    "c lupus": "'C. lupus' is the wolf",
    "st louis encephalitis": "'SLE' here means St. Louis encephalitis",
    "saint louis encephalitis": "'SLE' here means St. Louis encephalitis",
    "st louis encephalitis virus": "'SLE' here means St. Louis encephalitis",
    "SLE virus": "'SLE' here means St. Louis encephalitis",
    "SLEV": "'SLE' here means St. Louis encephalitis",
    "slit lamp": "'SLE' here means slit-lamp examination",
    "slit lamp examination": "'SLE' here means slit-lamp examination",
    "slit lamp exam": "'SLE' here means slit-lamp examination",
    "slit lamp examinations": "'SLE' here means slit-lamp examination",
}
# Traps that redefine the abbreviation SLE for the whole record.
_SLE_REDEFINED = frozenset(
    {
        "st louis encephalitis",
        "saint louis encephalitis",
        "st louis encephalitis virus",
        "SLE virus",
        "SLEV",
        "slit lamp",
        "slit lamp examination",
        "slit lamp exam",
        "slit lamp examinations",
    }
)

# A sentence that sets lupus beside another disease ("compared with SLE", "RA, SLE and SSc")
# is a comparison or a list, not the paper's subject.
_COMPARATOR_WORDS = frozenset(
    {
        "compared",
        "comparing",
        "comparison",
        "comparator",
        "versus",
        "vs",
        "than",
        "control",
        "controls",
        "such",
        "including",
        "include",
        "includes",
        "other",
        "like",
        "unlike",
        "similar",
        "mimic",
        "mimics",
        "mimicking",
        "differential",
        "comparative",
        "whereas",
        "while",
        "both",
    }
)
# "mimicking discoid lupus", "misdiagnosed as SLE", "distinct from drug-induced lupus": lupus is
# the differential diagnosis, not the disease.
_DIFFERENTIAL_WORDS = frozenset(
    {
        "mimicking",
        "mimic",
        "mimics",
        "mimicked",
        "misdiagnosed",
        "misdiagnosis",
        "masquerading",
        "simulating",
        "imitating",
        "resembling",
        "distinct",
        "distinguished",
        "distinguishing",
        "initially",
        "suggestive",  # "features suggestive of SLE"
    }
)
# "presenting as SLE", "mistaken for lupus": two words before the mention.
_DIFFERENTIAL_BIGRAMS = frozenset(
    {
        ("presenting", "as"),
        ("presented", "as"),
        ("misdiagnosed", "as"),
        ("mistaken", "for"),
        ("masquerading", "as"),
        ("disguised", "as"),
    }
)
# "suggested a clinical diagnosis of SLE", "a provisional diagnosis of lupus": the diagnosis
# that was considered, not the one made.
_TENTATIVE_DIAGNOSIS = frozenset(
    {"suggested", "suggesting", "suspected", "presumed", "presumptive", "provisional", "tentative", "working"}
)
DIFFERENTIAL_WINDOW = 5
# "an SLE and systemic sclerosis overlap", "overlap syndrome (SLE, MCTD and SSc)": lupus is
# half of the patient's disease, not one item of a list (guidelines 2.1, 2.7).
OVERLAP_WINDOW = 6
# "overlap between SLE and RA genes", "overlapping manifestations with SLE" are no syndrome
_NOT_AN_OVERLAP_SYNDROME = frozenset(
    {"between", "among", "across", "with", "manifestations", "features", "symptoms", "clinical", "signs"}
)
_OVERLAP_WORDS = frozenset({"overlap", "overlapping"})
# "lupus-like manifestations": features of another disease, not a lupus-like disease
_RESEMBLANCE_NOUNS = frozenset(
    {"manifestations", "manifestation", "features", "symptoms", "presentation", "picture", "findings"}
    | {"signs"}
)
# A mention that says who was studied: "patients with SLE", "SLE patients", "lupus-prone mice".
_POPULATION_BEFORE = frozenset(
    {
        "patients", "patient", "women", "woman", "men", "man", "children", "child", "adults",
        "adult", "adolescents", "adolescent", "individuals", "subjects", "participants", "cohort",
        "mice", "mouse", "boy", "girl", "pregnancies", "pregnant", "people", "cases", "case",
        "volunteers", "persons", "population", "model", "models", "modelling", "modeling", "those",
        "diagnosed",
    }
)  # fmt: skip
_POPULATION_AFTER = frozenset(
    {
        "patients", "patient", "cohort", "cohorts", "mice", "mouse", "women", "children",
        "pregnancies", "cases", "population", "participants", "subjects", "model", "models",
        "registry", "group", "groups",
    }
)  # fmt: skip
POPULATION_BEFORE_WINDOW = 4
POPULATION_AFTER_WINDOW = 2

_OTHER_DISEASES = [
    "rheumatoid arthritis",
    "RA",
    "osteoarthritis",
    "sjogren*",
    "sjögren*",
    "pSS",
    "systemic sclerosis",
    "SSc",
    "scleroderma",
    "multiple sclerosis",
    "psoria*",
    "PsA",
    "spondyl*",
    "myositis",
    "dermatomyositis",
    "polymyositis",
    "vasculitis",
    "AAV",
    "gout",
    "diabetes",
    "IgA nephropathy",
    "IgAN",
    "crohn*",
    "colitis",
    "inflammatory bowel disease",
    "IBD",
    "covid*",
    "sars cov 2",
    "sarcoidosis",
    "tuberculosis",
    "still*",
    "mixed connective tissue disease",
    "undifferentiated connective tissue disease",
    "connective tissue disease",
    "UCTD",
    "MCTD",
    "behcet*",
    "behçet*",
    "igg4",
    "hashimoto*",
    "graves",
    "myasthenia",
    "primary antiphospholipid syndrome",
    "PAPS",
    "kawasaki",
    "hiv",
    "lymphoma",
    "asthma",
    "atopic dermatitis",
    "dermatitis",
    "rosacea",
    "DM",  # dermatomyositis, or diabetes mellitus: another disease either way
    "IIM",
    "JDM",
    "SjD",
    "AOSD",
    "JIA",
    "juvenile idiopathic arthritis",
]

# Words that make a two-letter abbreviation mean lupus: "kidney failure from LN", "DLE lesions".
_KIDNEY_WORDS = frozenset(
    {"kidney", "renal", "dialysis", "haemodialysis", "hemodialysis", "nephritis", "glomerular", "proteinuria"}
)
_SKIN_WORDS = frozenset(
    {"skin", "cutaneous", "rash", "lesions", "lesion", "scarring", "alopecia", "dermatology"}
)
_WEAK_CONTEXT = {"LN": _KIDNEY_WORDS, "CLE": _SKIN_WORDS, "DLE": _SKIN_WORDS}


def _build_phrases() -> PhraseSet[tuple[str, str]]:
    ps: PhraseSet[tuple[str, str]] = PhraseSet()
    for kind, phrases in _POSITIVE.items():
        for p in phrases:
            ps.add(p, (kind, p))
    for p in _TRAPS:
        ps.add(p, ("trap", p))
    return ps


_PHRASES = _build_phrases()
_OTHER = PhraseSet((p, p) for p in _OTHER_DISEASES)
_LUPUS_DRUGS = frozenset(_POSITIVE["drug"])
