"""The taxonomy: each label's cues, MeSH descriptors, publication types and journal words
(`data/taxonomy.yaml`), with the tuned thresholds and the learned layer found beside it; and
where the packaged data and labelled sets are."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lupus_alerts.label_model import MODEL_FILE, LabelModel, LabelModelError, load_label_model

# the package's data folder, lupus_alerts/data: one level above this subpackage
DATA_DIR = Path(__file__).parent.parent / "data"
TAXONOMY_PATH = DATA_DIR / "taxonomy.yaml"
# The labelled sets (docs/annotation-guidelines.md; real/SOURCES.md for the real papers)
LABELLED_DIR = DATA_DIR / "labelled"
WRITTEN_DEV = LABELLED_DIR / "dev.jsonl"
WRITTEN_TEST = LABELLED_DIR / "test.jsonl"
REAL_DEV = LABELLED_DIR / "real" / "dev.jsonl"
REAL_TEST = LABELLED_DIR / "real" / "test.jsonl"
RHEUMATOLOGY_OTHER = LABELLED_DIR / "real" / "source" / "rheumatology_other.jsonl"
THRESHOLDS_FILE = "classifier_thresholds.json"

# Without a tuned artefact: the shared value the tuning lands on, which is what "weight 1.0 =
# enough on its own in the title" means (1 - exp(-2) = 0.86 passes, one weak cue does not).
DEFAULT_THRESHOLD = 0.8


class TaxonomyError(ValueError):
    """The taxonomy file is malformed (names the label and field at fault)."""


@dataclass(frozen=True, slots=True)
class Label:
    """One subspecialty label and its cues (see data/taxonomy.yaml for the fields)."""

    id: str
    name: str
    definition: str
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    mesh: tuple[tuple[str, str | None, float], ...]  # (descriptor, ui, weight)
    publication_types: dict[str, float]
    journals: dict[str, float]
    cues: dict[str, float]  # every text phrase, including the design words and drugs below
    abbreviations: dict[str, tuple[str, float]]  # abbreviation -> (meaning, weight)
    designs: frozenset[str] = frozenset()  # cues that name a study design
    drugs: frozenset[str] = frozenset()  # cues that name a treatment


@dataclass(slots=True)
class Taxonomy:
    """The labels in file order, MeSH qualifier hints, and the per-label thresholds."""

    labels: dict[str, Label]
    qualifiers: dict[str, tuple[str, float]]  # qualifier name (lower) -> (label, weight)
    thresholds: dict[str, float] = field(default_factory=dict)
    version: int = 1
    not_cues: tuple[str, ...] = ()  # other diseases' names that hold a cue word (no label)
    # the learned layer fitted for this taxonomy (data/label_model.json beside it), if any
    label_model: LabelModel | None = None

    @property
    def ids(self) -> list[str]:
        return list(self.labels)

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, DEFAULT_THRESHOLD)

    def display_name(self, label: str) -> str:
        return self.labels[label].name


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise TaxonomyError(f"{where}: missing field {key!r}")
    return d[key]


def _read_taxonomy_file(path: Path) -> dict[str, Any]:
    """The taxonomy file's mapping, which must hold a mapping of `labels`."""
    try:
        # The C loader, when PyYAML was built with libyaml, reads the file ten times faster.
        data = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, yaml.YAMLError) as e:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise TaxonomyError(f"{path}: expected a mapping with 'labels'")
    return data


def _parse_label(path: Path, lid: Any, d: Any) -> Label:
    """One label's entry as a `Label`: design words and drugs are cues too, at their higher weight."""
    where = f"{path}: label {lid!r}"
    if not isinstance(d, dict):
        raise TaxonomyError(f"{where}: expected a mapping")
    mesh = []
    for m in d.get("mesh") or []:
        mesh.append((str(_req(m, "descriptor", where)), m.get("ui"), float(m.get("weight", 1.0))))
    abbrs = {}
    for abbr, a in (d.get("abbreviations") or {}).items():
        if not isinstance(a, dict):
            raise TaxonomyError(f"{where}: abbreviation {abbr!r} needs {{means, weight}}")
        abbrs[str(abbr)] = (
            str(_req(a, "means", f"{where} abbreviation {abbr!r}")),
            float(a.get("weight", 1.0)),
        )
    cues = {str(k): float(v) for k, v in (_req(d, "cues", where) or {}).items()}
    kinds: dict[str, set[str]] = {"designs": set(), "drugs": set()}
    for kind, names in kinds.items():
        for k, v in (d.get(kind) or {}).items():
            cues[str(k)] = max(float(v), cues.get(str(k), 0.0))
            names.add(str(k))
    return Label(
        id=str(lid),
        name=str(_req(d, "name", where)),
        definition=str(_req(d, "definition", where)),
        includes=tuple(d.get("includes") or ()),
        excludes=tuple(d.get("excludes") or ()),
        mesh=tuple(mesh),
        publication_types={str(k): float(v) for k, v in (d.get("publication_types") or {}).items()},
        journals={str(k): float(v) for k, v in (d.get("journals") or {}).items()},
        cues=cues,
        abbreviations=abbrs,
        designs=frozenset(kinds["designs"]),
        drugs=frozenset(kinds["drugs"]),
    )


def _parse_qualifiers(
    path: Path, data: dict[str, Any], labels: dict[str, Label]
) -> dict[str, tuple[str, float]]:
    """MeSH qualifier (lower case) -> (label, weight); each must point to a known label."""
    qualifiers: dict[str, tuple[str, float]] = {}
    for q, spec in (data.get("qualifiers") or {}).items():
        label = _req(spec, "label", f"{path}: qualifier {q!r}")
        if label not in labels:
            raise TaxonomyError(f"{path}: qualifier {q!r} points to unknown label {label!r}")
        qualifiers[str(q).lower()] = (label, float(spec.get("weight", 0.5)))
    return qualifiers


def _read_thresholds(path: Path, labels: dict[str, Label]) -> dict[str, float]:
    """The tuned thresholds beside the taxonomy, for its labels only; none when there is no file."""
    thresholds: dict[str, float] = {}
    tpath = path.parent / THRESHOLDS_FILE
    if tpath.exists():
        try:
            tdata = json.loads(tpath.read_text(encoding="utf-8"))
            thresholds = {k: float(v) for k, v in tdata["thresholds"].items() if k in labels}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TaxonomyError(f"{tpath}: cannot read thresholds: {e}") from e
    return thresholds


def _read_model(path: Path, labels: dict[str, Label]) -> LabelModel | None:
    """The label model beside the taxonomy, if any; it must know exactly the taxonomy's labels."""
    model = None
    mpath = path.parent / MODEL_FILE
    if mpath.exists():
        try:
            model = load_label_model(mpath)
        except LabelModelError as e:
            raise TaxonomyError(str(e)) from e
        if set(model.labels) != set(labels):
            raise TaxonomyError(
                f"{mpath}: the label model knows labels {sorted(model.labels)}, the taxonomy "
                f"{sorted(labels)}; retrain with scripts/train_label_model.py or remove the file"
            )
    return model


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Read the taxonomy YAML (default: the packaged one) and, beside it, tuned thresholds.

    Raises `TaxonomyError` naming the label and field when the file is malformed.
    """
    path = Path(path) if path else TAXONOMY_PATH
    data = _read_taxonomy_file(path)
    labels = {str(lid): _parse_label(path, lid, d) for lid, d in data["labels"].items()}
    qualifiers = _parse_qualifiers(path, data, labels)
    thresholds = _read_thresholds(path, labels)
    model = _read_model(path, labels)
    not_cues = data.get("not_cues") or []
    if not isinstance(not_cues, list) or not all(isinstance(p, str) for p in not_cues):
        raise TaxonomyError(f"{path}: 'not_cues' must be a list of phrases")
    return Taxonomy(
        labels=labels,
        qualifiers=qualifiers,
        thresholds=thresholds,
        version=int(data.get("version", 1)),
        not_cues=tuple(not_cues),
        label_model=model,
    )
