"""How the classifier does on labelled papers: per-label precision, recall and F1, relevance
accuracy, the regression guard on non-lupus papers, and the JSON-lines helpers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lupus_alerts.classify.classifier import Classifier
from lupus_alerts.models import Classification, Paper


@dataclass(slots=True)
class LabelMetrics:
    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class EvalReport:
    """Per-label and overall figures of a classifier on a labelled set."""

    labels: list[LabelMetrics]
    n: int
    relevance_correct: int
    errors: list[dict[str, Any]] = field(default_factory=list)  # what was wrong, per paper

    @property
    def micro(self) -> LabelMetrics:
        m = LabelMetrics("micro")
        for lm in self.labels:
            m.tp += lm.tp
            m.fp += lm.fp
            m.fn += lm.fn
        return m

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the labels that occur in the gold set or were predicted."""
        used = [lm for lm in self.labels if lm.tp + lm.fp + lm.fn]
        return sum(lm.f1 for lm in used) / len(used) if used else 0.0

    @property
    def relevance_accuracy(self) -> float:
        return self.relevance_correct / self.n if self.n else 0.0

    def format(self) -> str:
        """The report as a plain-text table."""
        lines = [f"{'label':<18} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}"]
        for lm in self.labels:
            lines.append(
                f"{lm.label:<18} {lm.support:>7} {lm.precision:>6.3f} {lm.recall:>6.3f} {lm.f1:>6.3f}"
            )
        mi = self.micro
        lines.append(f"{'micro':<18} {mi.support:>7} {mi.precision:>6.3f} {mi.recall:>6.3f} {mi.f1:>6.3f}")
        lines.append(f"macro-F1 {self.macro_f1:.3f}")
        lines.append(f"micro-F1 {mi.f1:.3f}")
        lines.append(f"label precision {mi.precision:.3f}, label recall {mi.recall:.3f}")
        lines.append(f"relevance accuracy {self.relevance_accuracy:.3f} ({self.relevance_correct}/{self.n})")
        return "\n".join(lines)


def strip_mesh(paper: Paper) -> Paper:
    """The paper without MeSH headings (how a feed item, or a brand-new PubMed record, looks)."""
    paper.mesh = []
    return paper


def evaluate(
    records: Iterable[dict[str, Any]], classifier: Classifier, *, use_mesh: bool = False
) -> EvalReport:
    """Compare the classifier with gold labels (`gold_is_lupus`, `gold_topics`) on records.

    By default MeSH is removed first (text only: the targets are set for that case).
    """
    metrics = {lid: LabelMetrics(lid) for lid in classifier.taxonomy.ids}
    n = correct = 0
    errors: list[dict[str, Any]] = []
    for rec in records:
        paper = Paper.from_dict(rec)
        if not use_mesh:
            strip_mesh(paper)
        c = classifier.classify(paper)
        gold_lupus = bool(rec["gold_is_lupus"])
        gold = set(rec.get("gold_topics") or [])
        pred = {t.label for t in c.topics}
        n += 1
        correct += c.is_lupus == gold_lupus
        for lid, m in metrics.items():
            m.tp += lid in gold and lid in pred
            m.fp += lid in pred and lid not in gold
            m.fn += lid in gold and lid not in pred
        if c.is_lupus != gold_lupus or gold != pred:
            errors.append(
                {
                    "title": paper.title,
                    "gold_is_lupus": gold_lupus,
                    "is_lupus": c.is_lupus,
                    "missed": sorted(gold - pred),
                    "extra": sorted(pred - gold),
                }
            )
    return EvalReport(list(metrics.values()), n, correct, errors)


def relevance_guard(path: Path, classifier: Classifier) -> tuple[int, list[str]]:
    """How many records of a JSON-lines file of non-lupus papers there are, and the titles of
    those the classifier calls lupus (the regression guard for relevance)."""
    records = read_jsonl(path)
    called = []
    for rec in records:
        paper = Paper(
            source="pubmed",
            source_key=str(rec.get("pmid") or ""),
            title=rec.get("title") or "",
            abstract=rec.get("abstract") or "",
        )
        if classifier.classify(paper).is_lupus:
            called.append(paper.title)
    return len(records), called


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def classification_dict(c: Classification) -> dict[str, Any]:
    """The fields `lupus-alerts classify` adds to a paper-schema line."""
    return {
        "is_lupus": c.is_lupus,
        "relevance_score": c.relevance_score,
        "relevance_evidence": list(c.relevance_evidence),
        "topics": [{"label": t.label, "score": t.score, "evidence": list(t.evidence)} for t in c.topics],
    }
