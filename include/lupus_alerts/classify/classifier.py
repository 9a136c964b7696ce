"""The classifier: relevance first, then every label's score from the title, abstract, keywords,
MeSH, publication types, journal and a child's age, and the labels given (learned layer, or
the rule thresholds for a record with almost no abstract)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import compress
from typing import Any

from lupus_alerts import relevance
from lupus_alerts.classify.cues import (
    _INCLUSION_WORDS,
    DESIGN,
    DESIGN_SECTION_FACTOR,
    DRUG,
    DRUG_STEM_LABEL,
    DRUG_STEM_WEIGHT,
    DRUG_TITLE_WEIGHT,
    JOURNAL_FACTOR,
    KEYWORD_FACTOR,
    MESH_MAJOR_FACTOR,
    MESH_MINOR_FACTOR,
    NO_LABEL,
    PUBTYPE_FACTOR,
    QUALIFIER_MAJOR_FACTOR,
    QUALIFIER_MINOR_FACTOR,
    TITLE_FACTOR,
    LabelScore,
    _Acc,
    _Accs,
    _inclusion_criterion,
    _is_drug_name,
    _per_label,
)
from lupus_alerts.classify.evidence import _add_mentions
from lupus_alerts.classify.paper_kind import AGE_WEIGHT, _child_age, _paper_features, _paper_text
from lupus_alerts.classify.sections import _LOCATION_FEATURES, _docs, _sentence_factors, sentence_locations
from lupus_alerts.classify.taxonomy import Taxonomy, load_taxonomy
from lupus_alerts.label_model import MIN_SENTENCES
from lupus_alerts.models import Classification, Paper, TopicLabel
from lupus_alerts.phrases import (
    EXCLUSION_SENTENCE,
    MAX_TITLE_CHARS,
    NEGATION_WORDS,
    Doc,
    Hit,
    PhraseSet,
    TokenMemo,
    clip,
    is_negated,
    matched_text,
    phrase_words,
    tokens,
)

MAX_TOPICS = 3  # "most papers get one to three labels"


@dataclass(frozen=True, slots=True)
class _PaperContext:
    """What every label's features of one paper share."""

    top: float  # the highest raw score of any label
    first: int  # the first title word of any label's cue (-1: none)
    n_sent: int  # abstract sentences (at least 1)
    n_title: int  # title words (at least 1)
    features: dict[str, float]  # what kind of paper it is (`_paper_features`)


class Classifier:
    """Multi-label subspecialty classifier over a `Taxonomy` (default: the packaged one).

    Building one compiles every cue into a phrase table; reuse the instance.
    """

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        *,
        thresholds: dict[str, float] | None = None,
        learned: bool = True,
    ) -> None:
        """`learned=False` decides by the rule scores and thresholds alone, even when the
        taxonomy has a label model (the model's training and the thresholds' tuning use it)."""
        self.taxonomy = taxonomy or load_taxonomy()
        self.thresholds = {lid: self.taxonomy.threshold(lid) for lid in self.taxonomy.ids}
        if thresholds:
            self.thresholds.update(thresholds)
        self.label_model = self.taxonomy.label_model if learned else None
        # payload: (label, weight, phrase as shown in evidence, kind: "", DESIGN or DRUG)
        # A phrase listed twice for one label (as a cue and as an abbreviation) counts once.
        best: dict[tuple[Any, str], tuple[float, str, str]] = {}
        for lid, lab in self.taxonomy.labels.items():
            pairs = list(lab.cues.items()) + [(a, w) for a, (_means, w) in lab.abbreviations.items()]
            for phrase, w in pairs:
                kind = DESIGN if phrase in lab.designs else DRUG if phrase in lab.drugs else ""
                key = (phrase_words(phrase), lid)
                if key not in best or w > best[key][0] or (w == best[key][0] and kind):
                    best[key] = (w, phrase, kind or (best[key][2] if key in best else ""))
        self._cues: PhraseSet[tuple[str, float, str, str]] = PhraseSet()
        for (_k, lid), (w, phrase, kind) in best.items():
            self._cues.add(phrase, (lid, w, phrase, kind))
        for phrase in self.taxonomy.not_cues:
            # found like a cue, so that it hides the shorter cue inside it, but counts for no label
            self._cues.add(phrase, (NO_LABEL, 0.0, phrase, ""))
        self._journals: PhraseSet[tuple[str, float]] = PhraseSet(
            (phrase, (lid, w))
            for lid, lab in self.taxonomy.labels.items()
            for phrase, w in lab.journals.items()
        )
        self._mesh: dict[str, list[tuple[str, float]]] = {}
        for lid, lab in self.taxonomy.labels.items():
            for descriptor, ui, w in lab.mesh:
                self._mesh.setdefault(descriptor.lower(), []).append((lid, w))
                if ui:
                    self._mesh.setdefault(ui, []).append((lid, w))
        self._drug_names: TokenMemo[bool] = TokenMemo(_is_drug_name)
        self._pubtypes: dict[str, list[tuple[str, float]]] = {}
        for lid, lab in self.taxonomy.labels.items():
            for pt, w in lab.publication_types.items():
                self._pubtypes.setdefault(pt.lower(), []).append((lid, w))

    # -- scoring --------------------------------------------------------------------------

    def scores(self, paper: Paper) -> dict[str, LabelScore]:
        """Every label's score and evidence for `paper`, before thresholds (used for tuning)."""
        return self._scores(paper, *_docs(paper))

    def _scores(self, paper: Paper, title_doc: Doc, abstract_doc: Doc) -> dict[str, LabelScore]:
        acc = _Accs()
        head, colon, _sub = clip(paper.title or "", MAX_TITLE_CHARS).partition(": ")
        subtitle_start = len(tokens(head)) if colon else len(title_doc.tokens)
        self._score_text(
            acc, title_doc, "the title", TITLE_FACTOR, context=False, rank=0, subtitle_start=subtitle_start
        )
        if abstract_doc.tokens:
            self._score_text(acc, abstract_doc, "the abstract", 1.0, context=True, rank=4)
        for kw in paper.keywords:
            self._score_keyword(acc, kw)
        self._score_mesh(acc, paper)
        # One publication type per label counts ("Clinical Trial" and "Randomized Controlled
        # Trial" on one record say the same thing): the most specific, i.e. the last listed best.
        best_pt: dict[str, tuple[float, str]] = {}
        for pt in paper.publication_types:
            for lid, w in self._pubtypes.get(pt.lower(), ()):
                if lid not in best_pt or w >= best_pt[lid][0]:
                    best_pt[lid] = (w, pt)
        for lid, (w, pt) in best_pt.items():
            c = w * PUBTYPE_FACTOR
            acc[lid].raw += c
            acc[lid].add("meta", c)
            acc[lid].parts.append((3, c, f"publication type {pt}"))
        if paper.journal and not relevance.is_lupus_journal(paper.journal):
            seen: set[str] = set()
            for hit in self._journals.find(Doc.from_text(paper.journal)):
                for lid, w in hit.payloads:
                    if lid not in seen:
                        seen.add(lid)
                        c = w * JOURNAL_FACTOR
                        acc[lid].raw += c
                        acc[lid].add("meta", c)
                        acc[lid].parts.append((5, c, f"published in {paper.journal}"))
        text = _paper_text(paper)
        lowered = text.lower()
        self._score_age(acc, text, lowered)
        paper_features = _paper_features(paper, abstract_doc, text, lowered)
        ids = self.taxonomy.ids
        # a label nothing was found for has an empty accumulator (see `_Accs`)
        raws = [a.raw for a in acc.values()] + ([0.0] if len(acc) < len(ids) else [])
        top = max(raws)
        firsts = sorted(a.title_at for a in acc.values() if a.title_at >= 0)
        paper = _PaperContext(
            top=top,
            first=firsts[0] if firsts else -1,
            n_sent=max(len(abstract_doc.sent_start), 1),
            n_title=max(len(title_doc.tokens), 1),
            features=paper_features,
        )
        # Every label nothing was found for scores the same but for its threshold: computed
        # once per paper instead of once per label (most of the fifteen labels, most papers).
        blank = self._label_score("", _Acc(), paper) if len(acc) < len(ids) else None
        out = {}
        for lid in ids:
            a = acc.get(lid)
            if a is not None:
                out[lid] = self._label_score(lid, a, paper)
            else:
                assert blank is not None
                features = dict(blank.features)
                features["rule"] = float(blank.score >= self.thresholds[lid])
                out[lid] = LabelScore(lid, blank.score, blank.raw, [], features, {})
        return out

    def _label_score(self, lid: str, a: _Acc, paper: _PaperContext) -> LabelScore:
        """One label's score, evidence and the features the learned layer reads."""
        a.parts.sort(key=lambda p: (p[0], -p[1]))
        score = round(1.0 - math.exp(-a.raw), 3)
        where = a.where
        top = paper.top
        features = {key: where.get(loc, 0.0) for key, loc in _LOCATION_FEATURES}
        features.update(
            raw=a.raw,
            title_weight=a.title_weight,
            abstract_weight=a.abstract_weight,
            coverage=len(a.sentences) / paper.n_sent,
            cues=float(a.cues),
            relative=a.raw / top if top > 0 else 0.0,
            top=float(a.raw == top and top > 0),
            # the title's subject comes first: "Malar rash in SLE: ... therapeutic associations"
            title_first=float(a.title_at >= 0 and a.title_at == paper.first),
            title_position=1.0 - a.title_at / paper.n_title if a.title_at >= 0 else 0.0,
            rule=float(score >= self.thresholds[lid]) if lid else 0.0,
            **paper.features,
        )
        evidence = [e for _r, _c, e in a.parts]
        # weak words are not shown as the reason when something decisive was found
        decisive = [e for e in evidence if e not in a.weak]
        return LabelScore(lid, score, a.raw, decisive or evidence, features, a.found)

    def _score_text(
        self,
        acc: dict[str, _Acc],
        doc: Doc,
        where: str,
        factor: float,
        *,
        context: bool,
        rank: int,
        subtitle_start: int = 0,
    ) -> None:
        """Adds what the cue mentions in `doc` weigh, and their evidence, to each label's `acc`."""
        found = self._tally_mentions(acc, doc, factor, context=context, subtitle_start=subtitle_start)
        _add_mentions(acc, found, where, context=context, rank=rank)

    def _tally_mentions(
        self, acc: dict[str, _Acc], doc: Doc, factor: float, *, context: bool, subtitle_start: int
    ) -> dict[str, dict[str, list[float]]]:
        """Which cue mentions count (not negated, excluded, inclusion criteria) and what each weighs."""
        # per label: phrase shown -> [contribution of first mention, count, is a drug, weight]
        found: dict[str, dict[str, list[float]]] = {}
        factors = _sentence_factors(doc) if context else None
        locations = sentence_locations(doc) if context else None
        labels = doc.sent_labels
        hits = self._cues.find(doc)
        if DRUG_STEM_LABEL in self.taxonomy.labels:
            hits = hits + self._drug_stem_hits(doc, hits)
        # the sentences where a mention may be negated, excluded or an inclusion criterion
        # (in_exclusion_sentence, is_negated, _inclusion_criterion), asked once, not per mention
        negation = doc.sentences_with(NEGATION_WORDS)
        exclusion = doc.sentences_with(EXCLUSION_SENTENCE) if context else frozenset()
        inclusion = doc.sentences_with(_INCLUSION_WORDS) if context else frozenset()
        for hit in hits:
            s = hit.sentence
            if (
                s in exclusion
                or (s in negation and is_negated(doc, hit))
                or (s in inclusion and _inclusion_criterion(doc, hit))
            ):
                continue
            sf = factors[s] if factors else 1.0
            for lid, w, phrase, kind in _per_label(hit.payloads):
                shown = matched_text(doc, hit) if "*" in phrase else phrase
                per = found.setdefault(lid, {})
                cur = per.get(shown)
                f = sf
                if kind == DESIGN and context and (not labels or labels[hit.sentence] != "BACKGROUND"):
                    f = max(sf, DESIGN_SECTION_FACTOR)
                if kind == DRUG and not context:
                    w = max(w, DRUG_TITLE_WEIGHT)
                c = w * factor * f
                a = acc[lid]
                if locations is None:
                    loc = "title" if hit.start < subtitle_start else "subtitle"
                    if a.title_at < 0 or hit.start < a.title_at:
                        a.title_at = hit.start
                else:
                    loc = locations[hit.sentence]
                a.found.setdefault(phrase, set()).add(loc)
                if locations is None:
                    a.add(loc, w * factor)
                    a.title_weight = max(a.title_weight, w)
                else:
                    a.add(loc, w)
                    a.abstract_weight = max(a.abstract_weight, w)
                    a.sentences.add(hit.sentence)
                if cur is None:
                    per[shown] = [c, 1, kind == DRUG, w]
                else:
                    cur[0] = max(cur[0], c)
                    cur[1] += 1
        return found

    def _drug_stem_hits(self, doc: Doc, known: list[Hit]) -> list[Hit]:
        """Drug names recognised by their INN stem that no cue already matched."""
        # most abstracts name no drug by its stem: asked of the distinct words first
        if not any(map(self._drug_names.__getitem__, doc.vocabulary)):
            return []
        named = list(map(self._drug_names.__getitem__, doc.lower))
        covered = {i for h in known for i in range(h.start, h.end)}
        out: list[Hit] = []
        for i in compress(range(len(named)), named):
            if i not in covered:
                w = doc.lower[i]
                out.append(Hit(w, ((DRUG_STEM_LABEL, DRUG_STEM_WEIGHT, w, DRUG),), i, i + 1, doc.sent[i]))
        return out

    def _score_keyword(self, acc: dict[str, _Acc], keyword: str) -> None:
        doc = Doc.from_text(keyword)
        seen: set[str] = set()
        for hit in self._cues.find(doc):
            for lid, w, _phrase, _kind in hit.payloads:
                if lid in seen or lid == NO_LABEL:
                    continue
                seen.add(lid)
                c = w * KEYWORD_FACTOR
                acc[lid].raw += c
                acc[lid].add("meta", c)
                acc[lid].parts.append((2, c, f"keyword '{keyword}'"))

    def _score_mesh(self, acc: dict[str, _Acc], paper: Paper) -> None:
        for m in paper.mesh:
            targets = self._mesh.get(m.ui or "") or self._mesh.get(m.descriptor.lower(), [])
            major = m.is_major
            for lid, w in targets:
                c = w * (MESH_MAJOR_FACTOR if major else MESH_MINOR_FACTOR)
                acc[lid].raw += c
                acc[lid].add("meta", c)
                acc[lid].parts.append((1, c, f"MeSH {m.descriptor}" + (" (major topic)" if major else "")))
            if m.descriptor.lower() in relevance.LUPUS_MESH or (m.ui or "") in relevance.LUPUS_MESH_UIS:
                for q in m.qualifiers:
                    spec = self.taxonomy.qualifiers.get(q.name.lower())
                    if spec:
                        lid, w = spec
                        qmajor = q.major
                        c = w * (QUALIFIER_MAJOR_FACTOR if qmajor else QUALIFIER_MINOR_FACTOR)
                        acc[lid].raw += c
                        acc[lid].add("meta", c)
                        acc[lid].parts.append(
                            (1, c, f"MeSH {m.descriptor}/{q.name}" + (" (major topic)" if qmajor else ""))
                        )

    def _score_age(self, acc: dict[str, _Acc], text: str, lowered: str) -> None:
        """A child's age in `text` ("a 9-year-old boy") counts for pediatrics."""
        if "pediatrics" not in self.taxonomy.labels:
            return
        age = _child_age(text, lowered)
        if age is not None:
            acc["pediatrics"].raw += AGE_WEIGHT
            acc["pediatrics"].add("meta", AGE_WEIGHT)
            acc["pediatrics"].parts.append((4, AGE_WEIGHT, f"a patient aged {age} years"))

    # -- the public call ------------------------------------------------------------------

    def classify(self, paper: Paper) -> Classification:
        """Decide whether `paper` is about lupus and, if so, which subspecialties, with evidence."""
        title_doc, abstract_doc = _docs(paper)
        rel = relevance.assess_docs(
            paper.title or "",
            paper.abstract or "",
            title_doc,
            abstract_doc,
            journal=paper.journal,
            mesh=paper.mesh,
            keywords=paper.keywords,
        )
        if not rel.is_lupus:
            return Classification(False, rel.score, rel.evidence, [])
        scores = self._scores(paper, title_doc, abstract_doc)
        if self.label_model is not None and len(abstract_doc.sent_start) >= MIN_SENTENCES:
            # the learned layer's probability is the label's score
            picked = self.label_model.choose({lid: s.features for lid, s in scores.items()})
            topics = [TopicLabel(lid, round(p, 3), scores[lid].evidence[:4]) for lid, p in picked]
        else:
            chosen = sorted(self.decide(scores), key=lambda s: -s.score)
            topics = [TopicLabel(s.label, s.score, s.evidence[:4]) for s in chosen]
        return Classification(True, rel.score, rel.evidence, topics)

    def decide(
        self, scores: dict[str, LabelScore], thresholds: dict[str, float] | None = None
    ) -> list[LabelScore]:
        """The labels a lupus paper gets from its scores: those past their threshold, at most
        `MAX_TOPICS`, strongest first; if none passes, the strongest one (a lupus paper has a
        subject). `thresholds` overrides the classifier's (the tuning script uses it)."""
        th = thresholds or self.thresholds

        def margin(s: LabelScore) -> float:
            # how far past its own threshold a label is, comparable across labels
            return s.raw / max(-math.log(1.0 - min(th[s.label], 0.999)), 1e-6)

        ranked = sorted(scores.values(), key=margin, reverse=True)
        chosen = [s for s in ranked if s.score >= th[s.label]][:MAX_TOPICS]
        if not chosen and ranked and ranked[0].raw > 0:
            chosen = [ranked[0]]
        return chosen
