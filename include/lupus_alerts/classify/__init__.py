"""Subspecialty labels for lupus papers: multi-label, explainable, offline.

Each label in `data/taxonomy.yaml` lists weighted text cues, MeSH descriptors, publication
types and journal words. A paper's score for a label adds up what was found, weighted by where
it was found:

- the title counts double; abstract sentences count by section (objective and conclusions in
  full, results and methods about half, background less) or, unstructured, by place (the last
  sentence in full); negated mentions ("no renal involvement") and those in exclusion criteria
  ("patients with lupus nephritis were excluded") are ignored;
- MeSH descriptors count more when NLM marked them a major topic; qualifiers on a lupus
  descriptor ("Lupus Erythematosus, Systemic/drug therapy") point to a label too;
- repeated mentions of one cue add a little, not in proportion;
- study-design words ("randomised", "population-based") count in full in the methods, where
  authors state the design; a drug named in the title counts in full, and a list of drugs in
  the abstract about as much as its strongest member (background treatment).

The sum `raw` becomes a score `1 - exp(-raw)` in 0..1. Which labels a paper gets is decided
by the learned layer (`label_model`, fitted on real labelled papers) from each label's score
and where its cues were found (`LabelScore.features`); for a record with almost no abstract,
or a taxonomy without a fitted model, a label is given when its score reaches the label's
threshold (tuned on the dev split by `scripts/tune_classifier.py`, stored in
`data/classifier_thresholds.json`; `DEFAULT_THRESHOLD` otherwise). Whether the paper is about
lupus at all is `relevance.assess`; a paper that is not gets no labels. The title and abstract
are read up to `phrases.MAX_TITLE_CHARS` and `MAX_ABSTRACT_CHARS`.

Every label carries the evidence that produced it, phrased for a clinician, decisive cue
first: "'lupus nephritis' in the title", "MeSH Lupus Nephritis (major topic)".

The package, one module per concept (docs/architecture.md): `taxonomy` (the labels and their
cues, thresholds, the learned layer beside them, where the data is), `sections` (the abstract's
sections, how much each sentence counts, where a cue was found), `paper_kind` (case report,
review, a child's age), `cues` (what a mention weighs, drugs by INN stem, what is kept per
label), `evidence` (a label's total from its mentions and the evidence shown), `classifier`
(`Classifier`) and `evaluation` (figures on labelled papers). The matcher is
`lupus_alerts.phrases`, the learned layer `lupus_alerts.label_model`, the lupus check
`lupus_alerts.relevance`.
"""

from lupus_alerts.classify.classifier import MAX_TOPICS, Classifier
from lupus_alerts.classify.cues import (
    DESIGN,
    DESIGN_SECTION_FACTOR,
    DRUG,
    DRUG_STEM_LABEL,
    DRUG_STEM_MIN_LEN,
    DRUG_STEM_WEIGHT,
    DRUG_STEMS,
    DRUG_TITLE_WEIGHT,
    INCLUSION_WINDOW,
    JOURNAL_FACTOR,
    KEYWORD_FACTOR,
    MESH_MAJOR_FACTOR,
    MESH_MINOR_FACTOR,
    NO_LABEL,
    NOT_DRUGS,
    PUBTYPE_FACTOR,
    QUALIFIER_MAJOR_FACTOR,
    QUALIFIER_MINOR_FACTOR,
    TITLE_FACTOR,
    LabelScore,
)
from lupus_alerts.classify.evaluation import (
    EvalReport,
    LabelMetrics,
    classification_dict,
    evaluate,
    read_jsonl,
    relevance_guard,
    strip_mesh,
)
from lupus_alerts.classify.evidence import DRUG_LIST_EXTRA, EVIDENCE_MIN_WEIGHT, REPEAT_BONUS, REPEAT_CAP
from lupus_alerts.classify.paper_kind import AGE_WEIGHT, PAEDIATRIC_AGE_LIMIT
from lupus_alerts.classify.sections import (
    AIM_LEAD,
    LOCATIONS,
    SECTION_FACTORS,
    UNSTRUCTURED_FIRST,
    UNSTRUCTURED_LAST,
    UNSTRUCTURED_MIDDLE,
    abstract_sections,
    sentence_locations,
)
from lupus_alerts.classify.taxonomy import (
    DATA_DIR,
    DEFAULT_THRESHOLD,
    LABELLED_DIR,
    REAL_DEV,
    REAL_TEST,
    RHEUMATOLOGY_OTHER,
    TAXONOMY_PATH,
    THRESHOLDS_FILE,
    WRITTEN_DEV,
    WRITTEN_TEST,
    Label,
    Taxonomy,
    TaxonomyError,
    load_taxonomy,
)

__all__ = [
    "AGE_WEIGHT",
    "AIM_LEAD",
    "DATA_DIR",
    "DEFAULT_THRESHOLD",
    "DESIGN",
    "DESIGN_SECTION_FACTOR",
    "DRUG",
    "DRUG_LIST_EXTRA",
    "DRUG_STEMS",
    "DRUG_STEM_LABEL",
    "DRUG_STEM_MIN_LEN",
    "DRUG_STEM_WEIGHT",
    "DRUG_TITLE_WEIGHT",
    "EVIDENCE_MIN_WEIGHT",
    "INCLUSION_WINDOW",
    "JOURNAL_FACTOR",
    "KEYWORD_FACTOR",
    "LABELLED_DIR",
    "LOCATIONS",
    "MAX_TOPICS",
    "MESH_MAJOR_FACTOR",
    "MESH_MINOR_FACTOR",
    "NOT_DRUGS",
    "NO_LABEL",
    "PAEDIATRIC_AGE_LIMIT",
    "PUBTYPE_FACTOR",
    "QUALIFIER_MAJOR_FACTOR",
    "QUALIFIER_MINOR_FACTOR",
    "REAL_DEV",
    "REAL_TEST",
    "REPEAT_BONUS",
    "REPEAT_CAP",
    "RHEUMATOLOGY_OTHER",
    "SECTION_FACTORS",
    "TAXONOMY_PATH",
    "THRESHOLDS_FILE",
    "TITLE_FACTOR",
    "UNSTRUCTURED_FIRST",
    "UNSTRUCTURED_LAST",
    "UNSTRUCTURED_MIDDLE",
    "WRITTEN_DEV",
    "WRITTEN_TEST",
    "Classifier",
    "EvalReport",
    "Label",
    "LabelMetrics",
    "LabelScore",
    "Taxonomy",
    "TaxonomyError",
    "abstract_sections",
    "classification_dict",
    "evaluate",
    "load_taxonomy",
    "read_jsonl",
    "relevance_guard",
    "sentence_locations",
    "strip_mesh",
]
