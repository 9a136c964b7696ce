"""The learned layer: its committed file is reproduced by the training script, plain-Python
inference equals scikit-learn's, and the decision rule keeps precision first.

The training data are the labelled dev splits (real and written); nothing here reads a test
split.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from lupus_alerts.classify import DATA_DIR, REAL_DEV, TAXONOMY_PATH, WRITTEN_DEV, Classifier, load_taxonomy
from lupus_alerts.label_model import (
    DECISIVE_WEIGHT,
    FEATURES,
    MODEL_FILE,
    LabelModel,
    LabelModelError,
    load_label_model,
)
from lupus_alerts.models import Paper

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_label_model.py"
MODEL_PATH = DATA_DIR / MODEL_FILE


def training_script():
    spec = importlib.util.spec_from_file_location("train_label_model", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def committed() -> dict:
    return json.loads(MODEL_PATH.read_text(encoding="utf-8"))


def features(**kw: float) -> dict[str, float]:
    base = dict.fromkeys((*FEATURES, "sentences"), 0.0)
    base.update(kw)
    return base


def test_the_model_was_trained_on_the_dev_splits_of_todays_data(committed: dict) -> None:
    trained = committed["trained_on"]
    assert trained["real_dev_sha256"] == hashlib.sha256(REAL_DEV.read_bytes()).hexdigest()
    assert trained["written_dev_sha256"] == hashlib.sha256(WRITTEN_DEV.read_bytes()).hexdigest()
    assert trained["taxonomy_sha256"] == hashlib.sha256(TAXONOMY_PATH.read_bytes()).hexdigest(), (
        "taxonomy.yaml changed: rerun scripts/train_label_model.py"
    )
    assert "dev split" in committed["about"]
    assert set(committed["labels"]) == set(load_taxonomy().ids)


@pytest.mark.slow
def test_a_refit_reproduces_the_committed_weights_and_inference_matches_scikit_learn(committed: dict) -> None:
    mod = training_script()
    clf = Classifier(learned=False)
    real, written = mod.examples(REAL_DEV, clf), mod.examples(WRITTEN_DEV, clf)
    hyper = committed["hyperparameters"]
    labels = clf.taxonomy.ids
    fresh = mod.fit(real, written, labels, hyper["C"], hyper["written_weight"], hyper["threshold"])
    ours = load_label_model(MODEL_PATH)
    assert abs(fresh.intercept - ours.intercept) < mod.TOLERANCE
    for a, b in zip(fresh.shared, ours.shared, strict=True):
        assert abs(a - b) < mod.TOLERANCE
    for lid in labels:
        assert abs(fresh.bias[lid] - ours.bias[lid]) < mod.TOLERANCE
        assert all(
            abs(a - b) < mod.TOLERANCE for a, b in zip(fresh.adjust[lid], ours.adjust[lid], strict=True)
        )
    # the plain-Python probability is scikit-learn's, on every training row
    from sklearn.linear_model import LogisticRegression

    x, y = mod.design(real, labels)
    lr = LogisticRegression(C=hyper["C"], max_iter=20_000, tol=1e-8)
    xw, yw = mod.design(written, labels)
    import numpy as np

    weights = np.concatenate([np.ones(len(y)), np.full(len(yw), hyper["written_weight"])])
    lr.fit(np.vstack([x, xw]), np.concatenate([y, yw]), sample_weight=weights)
    expected = lr.predict_proba(x)[:, 1]
    got = [
        ours.probability(lid, ex.features[lid])
        for ex in real
        if ex.gold_lupus and ex.learned
        for lid in labels
    ]
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-3


def test_the_training_script_refuses_a_test_split(tmp_path: Path) -> None:
    mod = training_script()
    test_file = tmp_path / "test.jsonl"
    test_file.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit, match="refusing to train on a test split"):
        mod.examples(test_file, Classifier(learned=False))


def toy_model(threshold: float = 0.5, max_labels: int = 2) -> LabelModel:
    # probability = sigmoid(4 * title_weight - 2): a title cue of weight 1.0 gives 0.88
    n = len(FEATURES)
    shared = [0.0] * n
    shared[FEATURES.index("title_weight")] = 4.0
    labels = ("a", "b", "c")
    return LabelModel(
        labels=labels,
        intercept=-2.0,
        shared=tuple(shared),
        bias=dict.fromkeys(labels, 0.0),
        adjust={lid: (0.0,) * n for lid in labels},
        threshold=threshold,
        max_labels=max_labels,
        meta={},
    )


def test_probability_is_the_logistic_of_the_linear_score() -> None:
    m = toy_model()
    assert m.probability("a", features(title_weight=1.0)) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert m.probability("a", features()) == pytest.approx(1 / (1 + math.exp(2.0)))


def test_choose_keeps_probable_labels_with_a_decisive_cue_strongest_first_up_to_the_cap() -> None:
    m = toy_model(max_labels=2)
    picked = m.choose(
        {
            "a": features(title_weight=0.9),
            "b": features(title_weight=1.0),
            "c": features(title_weight=0.8),
        }
    )
    assert [lid for lid, _p in picked] == ["b", "a"]


def test_a_label_without_a_decisive_cue_is_never_given() -> None:
    # many weak words can make a label probable, but there is nothing to name as the reason
    n = len(FEATURES)
    shared = [0.0] * n
    shared[FEATURES.index("cues")] = 10.0
    m = LabelModel(("a",), 0.0, tuple(shared), {"a": 0.0}, {"a": (0.0,) * n}, 0.5, 3, {})
    weak = features(cues=8.0, abstract_weight=DECISIVE_WEIGHT - 0.1)
    assert m.probability("a", weak) > 0.99
    assert m.choose({"a": weak}) == []
    assert m.choose({"a": {**weak, "at_meta": 1.5}})  # MeSH or a keyword is decisive evidence


def test_no_label_is_forced_on_a_paper_when_none_is_probable_enough() -> None:
    # precision first: such a lupus paper goes to the digest's general section
    m = toy_model(threshold=0.95)
    assert m.choose({"a": features(title_weight=0.6), "b": features(title_weight=0.7)}) == []


def test_a_malformed_model_file_names_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / MODEL_FILE
    bad.write_text(json.dumps({"features": ["raw"], "labels": []}), encoding="utf-8")
    with pytest.raises(LabelModelError, match=rf"{MODEL_FILE}: field 'features'"):
        load_label_model(bad)
    bad.write_text(json.dumps({"features": list(FEATURES), "labels": ["a"]}), encoding="utf-8")
    with pytest.raises(LabelModelError, match="malformed label model"):
        load_label_model(bad)


def test_a_record_with_almost_no_abstract_is_decided_by_the_rules() -> None:
    # the model learned from papers with abstracts; a feed item's bare title is outside that
    title_only = Paper(source="t", source_key="t", title="Belimumab in lupus nephritis", abstract="")
    learned, rules = Classifier(), Classifier(learned=False)
    assert learned.label_model is not None
    assert learned.classify(title_only) == rules.classify(title_only)
    assert {t.label for t in learned.classify(title_only).topics} == {"nephrology", "therapeutics"}


def test_a_taxonomy_without_a_model_beside_it_decides_by_the_rules(tmp_path: Path) -> None:
    (tmp_path / "taxonomy.yaml").write_text(TAXONOMY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    clf = Classifier(load_taxonomy(tmp_path / "taxonomy.yaml"))
    assert clf.label_model is None
    c = clf.classify(Paper(source="t", source_key="t", title="Belimumab in lupus nephritis", abstract=""))
    assert {t.label for t in c.topics} == {"nephrology", "therapeutics"}
