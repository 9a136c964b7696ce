"""The learned layer: which of a lupus paper's candidate labels are main subjects.

The rule engine (`classify`) finds every cue of every label and says where it found it: in
the title or its subtitle, in the abstract's objective or conclusion, methods, results,
background or elsewhere, or outside the text (MeSH, keywords, publication type). A cue in a
title is usually the paper's subject; the same word in a case report's work-up is not. Which
of these places, weights and counts make a label a main subject was learned from real,
labelled papers by `scripts/train_label_model.py`: a logistic regression over the features
below, shared by all labels, with each label's own bias and its own adjustment of every
feature's weight (the rare labels lean on the shared part).

The fitted model is a small JSON file in the package (`data/label_model.json`). Inference is
plain Python: a dot product and a logistic function per label, no numpy or scikit-learn, so
the classifier stays light and offline. A label is given when its probability reaches the
model's threshold (chosen by cross-validation, precision first) and its evidence holds a
decisive cue (see `DECISIVE_WEIGHT`).

The model was fitted on papers with abstracts; a record with less than `MIN_SENTENCES`
abstract sentences (a feed item's title, an erratum) is outside what it learned, and the
classifier decides such a record by the rule engine's thresholds instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE = "label_model.json"
# Where cues are counted (classify.LOCATIONS), each as log(1 + summed cue weight).
LOCATION_FEATURES = (
    "at_title",
    "at_subtitle",
    "at_objective",
    "at_conclusion",
    "at_methods",
    "at_results",
    "at_background",
    "at_other",
    "at_meta",
)
# The feature vector, in order. `classify.LabelScore.features` holds the raw values.
FEATURES = (
    "raw",  # log(1 + the rule engine's score before its 1 - exp(-raw) squashing)
    *LOCATION_FEATURES,
    "title_weight",  # the heaviest cue weight in the title (0..1)
    "abstract_weight",  # ... in the abstract
    "coverage",  # share of the abstract's sentences holding a cue of the label
    "cues",  # log(1 + distinct cues of the label in the abstract)
    "relative",  # the label's raw score over the paper's highest
    "top",  # 1 when the label has the paper's highest raw score
    "rule",  # 1 when the rule engine alone would give the label
    "title_first",  # 1 when the label's cue is the title's first
    "title_position",  # 1 - (position of its first title cue / title length); 0 when none
    "case_report",  # the paper reads as a case report
    "review",  # the title says review, meta-analysis or perspective
)
_LOGGED = frozenset({"raw", "cues", *LOCATION_FEATURES})
# A label needs at least one cue this heavy (or MeSH, keyword, publication type, journal
# evidence) to be given: its evidence must name a decisive cue, not only weak words.
DECISIVE_WEIGHT = 0.5
MIN_SENTENCES = 2


class LabelModelError(ValueError):
    """The model file is malformed or does not fit the taxonomy (names the file and field)."""


_FEATURES_LOGGED = tuple((f, f in _LOGGED) for f in FEATURES)


def feature_vector(features: Mapping[str, float]) -> list[float]:
    """The model's input for one label of one paper, from `LabelScore.features`."""
    return [math.log1p(features[f]) if logged else float(features[f]) for f, logged in _FEATURES_LOGGED]


def has_decisive_cue(features: Mapping[str, float]) -> bool:
    """Whether the label's evidence holds a cue that can be named as the reason."""
    return (
        max(features["title_weight"], features["abstract_weight"]) >= DECISIVE_WEIGHT
        or features["at_meta"] > 0
    )


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class LabelModel:
    """A fitted model: shared weights plus each label's bias and adjustments."""

    labels: tuple[str, ...]
    intercept: float
    shared: tuple[float, ...]
    bias: Mapping[str, float]
    adjust: Mapping[str, tuple[float, ...]]
    threshold: float
    max_labels: int
    meta: Mapping[str, Any]
    # label -> (intercept + bias, shared + adjustment per feature), summed on first use
    _combined: dict[str, tuple[float, tuple[float, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def probability(self, label: str, features: Mapping[str, float]) -> float:
        """How likely `label` is a main subject of the paper whose `features` these are."""
        x = feature_vector(features)
        combined = self._combined.get(label)
        if combined is None:
            weights = tuple(s + a for s, a in zip(self.shared, self.adjust[label], strict=True))
            combined = self._combined[label] = (self.intercept + self.bias[label], weights)
        z, weights = combined
        for xi, w in zip(x, weights, strict=True):
            z += w * xi
        return _sigmoid(z)

    def choose(self, features: Mapping[str, Mapping[str, float]]) -> list[tuple[str, float]]:
        """The labels to give a lupus paper, strongest first, with their probabilities: those
        at or above the threshold that have a decisive cue, at most `max_labels`.

        Possibly none. Precision first: a lupus paper whose subject no label fits goes to the
        digest's general section rather than under a wrong heading (cross-validation on real
        papers: giving such a paper its most probable label anyway cost precision and did not
        raise micro-F1).
        """
        probs = sorted(
            ((self.probability(lid, f), lid) for lid, f in features.items() if has_decisive_cue(f)),
            reverse=True,
        )
        return [(lid, p) for p, lid in probs if p >= self.threshold][: self.max_labels]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "label model") -> LabelModel:
        """Build from the JSON form that `scripts/train_label_model.py` writes."""
        try:
            if tuple(data["features"]) != FEATURES:
                raise LabelModelError(
                    f"{where}: field 'features' lists {data['features']}, this code computes {FEATURES}; "
                    "retrain with scripts/train_label_model.py"
                )
            labels = tuple(data["labels"])
            model = cls(
                labels=labels,
                intercept=float(data["intercept"]),
                shared=tuple(float(v) for v in data["shared"]),
                bias={lid: float(data["label_bias"][lid]) for lid in labels},
                adjust={lid: tuple(float(v) for v in data["label_adjust"][lid]) for lid in labels},
                threshold=float(data["threshold"]),
                max_labels=int(data["max_labels"]),
                meta={k: v for k, v in data.items() if k not in _MODEL_FIELDS},
            )
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, LabelModelError):
                raise
            raise LabelModelError(f"{where}: malformed label model ({type(e).__name__}: {e})") from e
        n = len(FEATURES)
        if len(model.shared) != n or any(len(a) != n for a in model.adjust.values()):
            raise LabelModelError(f"{where}: every weight vector must have {n} entries")
        return model

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (weights rounded so the file is small and diffs read)."""
        return {
            **self.meta,
            "features": list(FEATURES),
            "labels": list(self.labels),
            "threshold": self.threshold,
            "max_labels": self.max_labels,
            "intercept": round(self.intercept, 6),
            "shared": [round(v, 6) for v in self.shared],
            "label_bias": {lid: round(self.bias[lid], 6) for lid in self.labels},
            "label_adjust": {lid: [round(v, 6) for v in self.adjust[lid]] for lid in self.labels},
        }


_MODEL_FIELDS = frozenset(
    {"features", "labels", "threshold", "max_labels", "intercept", "shared", "label_bias", "label_adjust"}
)


def load_label_model(path: Path) -> LabelModel:
    """Read a model file; `LabelModelError` names the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LabelModelError(f"{path}: cannot read the label model: {e}") from e
    if not isinstance(data, dict):
        raise LabelModelError(f"{path}: expected a JSON object")
    return LabelModel.from_dict(data, str(path))
