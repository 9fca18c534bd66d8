"""Retrain-and-evaluate smoke test on a small real subset: the training path works and beats chance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nlp import artifacts, train
from nlp.classify import Classifier


@pytest.mark.data
def test_retrain_small_subset_beats_chance(shared_data, tmp_path):
    results = train.train_all(shared_data, tmp_path, limit=1500, folds=3)
    assert results["topic"]["macro_f1"] > 1 / 7 + 0.3
    assert results["emotion"]["macro_f1"] > 1 / 6 + 0.12
    assert results["polarity"]["macro_f1"] > 0.5 + 0.15
    clf = Classifier.load(tmp_path)
    assert clf.topic.classes and len(clf.emotion.classes) >= 6
    card = json.loads((tmp_path / "topic" / "model.json").read_text(encoding="utf-8"))["card"]
    assert card["evaluation"]["topic"]["n"] >= 200
    assert card["evaluation"]["topic"]["protocol"].startswith("nested")  # topic offsets are tuned on inner folds
    assert clf.emotion.spec.lexicon and clf.topic.spec == clf.polarity.spec  # one shared spec, lexicon inside


@pytest.mark.data
def test_topic_from_own_csv(shared_data, tmp_path):
    csv = tmp_path / "mine.csv"
    rows = ["text,label"] + [f"小区停车位不足{i}号楼车辆乱停,停车" for i in range(12)] + \
        [f"学校食堂饭菜质量差第{i}次反映,食堂" for i in range(12)]
    csv.write_text("\n".join(rows), encoding="utf-8")
    art, ev = train.train_topic(shared_data, topic_csv=csv, folds=3)
    assert art.classes == ["停车", "食堂"] and ev["macro_f1"] > 0.9
    artifacts.save(art, tmp_path / "m")
    assert artifacts.load(tmp_path / "m", "topic").classes == ["停车", "食堂"]


@pytest.mark.data
def test_sentiment_lexicon_reads_dutir_codes_and_polarity_lists(shared_data):
    lexicon = train.sentiment_lexicon(shared_data)
    assert len(lexicon) > 20_000
    assert lexicon["愤怒"] == "NA"  # DUTIR's anger code, which pandas turns into NaN unless told not to
    assert {"pos", "neg"} <= set(lexicon.values())
    assert any(cat.endswith("+") for cat in lexicon.values())  # intensity ≥ 7 is its own category


def test_sentiment_lexicon_missing_folder_gives_empty_spec(tmp_path):
    assert train.sentiment_lexicon(tmp_path) == {}
    assert train.training_spec(tmp_path).lexicon == {}


def test_lexicon_weight_scales_only_lexicon_columns():
    spec = train.FeatureSpec(lexicon={"满意": "pos", "失望": "neg"})
    docs = train.make_docs(["非常满意的一次入住", "很失望不满意", "房间满意服务失望", "一般般吧"] * 3)
    counts = train.count_matrix(docs, spec)
    labels = ["positive", "negative", "negative", "positive"] * 3
    plain = train.fit_linear(counts, labels, train.Recipe(families=("word", "lexicon"), min_df=1), spec)
    boosted = train.fit_linear(counts, labels, train.Recipe(families=("word", "lexicon"), min_df=1, lexicon_weight=2.0),
                               spec)
    lex = spec.block("lexicon")
    in_lex = (plain.used >= lex.start) & (plain.used < lex.stop)
    assert in_lex.any() and (~in_lex).any()
    assert np.allclose(boosted.col_weight[in_lex], 2 * plain.col_weight[in_lex])
    assert np.allclose(boosted.col_weight[~in_lex], plain.col_weight[~in_lex])


def test_auxiliary_rows_are_weighted_and_their_indicator_is_dropped():
    """aux rows (another source) get recipe.aux_weight; the training-only indicator never reaches the artifact."""
    spec = train.FeatureSpec()
    main = ["非常满意的一次入住", "很失望的一次入住"] * 4
    aux_texts = ["非常满意"] * 12  # contradicting labels from the auxiliary source
    counts = train.count_matrix(train.make_docs(main + aux_texts), spec)
    labels = np.array(["positive", "negative"] * 4 + ["negative"] * 12, dtype=object)
    aux = np.r_[np.zeros(len(main), bool), np.ones(len(aux_texts), bool)]
    probe = train.count_matrix(train.make_docs(["非常满意"]), spec)

    def predict(fitted: train.Fitted) -> str:
        return fitted.classes[int(fitted.decisions(probe).argmax(1)[0])]

    base = train.Recipe(families=("word",), min_df=1, balanced=False)
    full = train.fit_linear(counts, labels, base, spec, aux=aux)
    assert predict(full) == "negative"  # at weight 1 the 12 contradicting rows win
    ignored = train.fit_linear(counts, labels, train.Recipe(families=("word",), min_df=1, balanced=False,
                                                              aux_weight=0.0), spec, aux=aux)
    assert predict(ignored) == "positive"
    none_aux = train.fit_linear(counts, labels, base, spec, aux=np.zeros(len(labels), bool))
    assert np.allclose(none_aux.coef, train.fit_linear(counts, labels, base, spec).coef)
    flagged = train.fit_linear(counts, labels, train.Recipe(families=("word",), min_df=1, balanced=False,
                                                              aux_indicator=True), spec, aux=aux)
    assert flagged.coef.shape == (1, len(flagged.used))  # indicator column dropped
    assert not np.allclose(flagged.coef, full.coef)  # the indicator took part of the auxiliary rows' pull


def test_idf_power_squares_column_weights_and_topic_recipe_uses_it():
    docs = train.make_docs(["公交车站台破损需要维修", "学校食堂饭菜质量差", "公交线路调整不便出行", "食堂卫生差学生腹泻"] * 3)
    counts = train.count_matrix(docs)
    labels = ["交通运输", "教育文体", "交通运输", "教育文体"] * 3
    plain = train.fit_linear(counts, labels, train.Recipe(families=("word", "char2"), min_df=1))
    squared = train.fit_linear(counts, labels, train.Recipe(families=("word", "char2"), min_df=1, idf_power=2.0))
    assert np.array_equal(plain.used, squared.used)
    assert np.allclose(squared.col_weight, plain.col_weight ** 2)
    assert (plain.col_weight >= 1).all()  # smoothed idf ≥ 1, so the power spreads rare and common columns apart
    assert train.TOPIC_RECIPE.idf_power == 2.0  # nested CV 0.8733 → 0.8811 (and +0.019, +0.005 on two reshuffles)


@pytest.mark.data
def test_topic_data_adds_taxonomy_names_as_light_training_rows(shared_data):
    ds = train.topic_data(shared_data, limit=70)
    scored = ds.eval_mask
    assert 200 <= (~scored).sum() <= 300 and ds.weights is not None  # 附件1 rows under the 7 classes, 其他-only dropped
    assert np.all(ds.weights[scored] == 1) and np.all(ds.weights[~scored] == train.TOPIC_TAXONOMY_WEIGHT)
    assert set(ds.labels[~scored]) == set(ds.labels[scored])
    assert len(set(ds.groups[~scored])) == (~scored).sum() and not set(ds.groups[~scored]) & set(ds.groups[scored])
    names = {d.text: label for d, label, m in zip(ds.docs, ds.labels, scored, strict=True) if not m}
    assert names["环境污染 噪音污染"] == "环境保护" and not any("其他" in t.split() for t in names)
    plain = train.topic_data(shared_data, limit=70, taxonomy_weight=0)
    assert plain.weights is None and plain.eval_mask.all() and len(plain.docs) == scored.sum()


def test_sample_weight_and_auxiliary_weight_multiply():
    """Taxonomy-style row weights and an auxiliary source's weight act together (their product is the row weight)."""
    spec = train.FeatureSpec()
    main = ["非常满意的一次入住", "很失望的一次入住"] * 4
    extra = ["非常满意"] * 12
    counts = train.count_matrix(train.make_docs(main + extra), spec)
    labels = np.array(["positive", "negative"] * 4 + ["negative"] * 12, dtype=object)
    aux = np.r_[np.zeros(len(main), bool), np.ones(len(extra), bool)]
    recipe = train.Recipe(families=("word",), min_df=1, balanced=False, aux_weight=0.5)
    zeroed = train.fit_linear(counts, labels, recipe, spec, aux=aux, sample_weight=np.r_[np.ones(len(main)), np.zeros(len(extra))])
    probe = train.count_matrix(train.make_docs(["非常满意"]), spec)
    assert zeroed.classes[int(zeroed.decisions(probe).argmax(1)[0])] == "positive"  # the 12 contradicting rows are gone
    full = train.fit_linear(counts, labels, train.Recipe(families=("word",), min_df=1, balanced=False), spec, aux=aux)
    assert full.classes[int(full.decisions(probe).argmax(1)[0])] == "negative"  # at weight 1 they win
    halved = train.fit_linear(counts, labels, recipe, spec, aux=aux)
    explicit = train.fit_linear(counts, labels, train.Recipe(families=("word",), min_df=1, balanced=False), spec,
                                sample_weight=np.where(aux, 0.5, 1.0))
    assert np.allclose(halved.coef, explicit.coef, atol=1e-6)


def test_nb_scaling_is_folded_into_the_coefficients():
    """NB-SVM: columns scaled by sign(r)·|r|^p for fitting; the artifact's plain linear model gives the same decisions."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    spec = train.FeatureSpec()
    texts = ["非常满意的一次入住", "很失望的一次入住", "服务满意房间干净", "房间脏服务差很失望"] * 3
    counts = train.count_matrix(train.make_docs(texts), spec)
    labels = np.array(["positive", "negative", "positive", "negative"] * 3, dtype=object)
    recipe = train.Recipe(families=("word",), min_df=1, balanced=False, model="logreg", C=10.0, nb_power=0.5)
    fitted = train.fit_linear(counts, labels, recipe, spec)
    z = train.weighted(counts[:, fitted.used], fitted.col_weight)
    ratio = train.nb_ratio(z, labels, None, recipe)
    probe = train.count_matrix(train.make_docs(["满意", "失望"]), spec)[:, fitted.used]
    satisfied, disappointed = (int(probe[row].nonzero()[1][0]) for row in (0, 1))
    assert ratio[satisfied] > 0 > ratio[disappointed]  # present in one class only: signed by it
    explicit = LogisticRegression(C=10.0, solver="liblinear", max_iter=3000).fit(z @ sparse.diags(ratio), labels)
    margin = explicit.decision_function(z @ sparse.diags(ratio))  # log-odds of "positive"
    assert np.allclose(fitted.decisions(counts), np.column_stack([-margin, margin]) / 2, atol=1e-5)
    with pytest.raises(train.ModelError, match="two classes"):
        train.fit_linear(counts, np.array(["a", "b", "c"] * 4, dtype=object), recipe, spec)
    assert train.POLARITY_RECIPE.nb_power == 0.5  # +0.0053 over four fold assignments (POLARITY_TRIED)
