"""The serving predictor gives the fitted pipeline's probabilities, whatever the text and the model's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from intent_lib.artefacts import load_checked
from intent_lib.model import ModelParams, build_model, fit_model
from intent_lib.predictor import Predictor

MESSY = ["", "   ", "😀😀😀", "<script>alert(1)</script> doliprane", "какой-то текст", "\x00\x07 contrôle",
         "a" * 20_000, "Peut-on prendre du doliprane enceinte ?", "prix prix prix du spasfon", None, 12.5]


def assert_same_probabilities(model: Pipeline, texts: list) -> None:
    expected, got = model.predict_proba(texts), Predictor(model).predict_proba(texts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_served_model_gives_the_pipelines_probabilities(trained_model_dir: Path, demo_frame: pd.DataFrame) -> None:
    model = load_checked(trained_model_dir / "models" / "intent_model.pkl")[0]
    assert_same_probabilities(model, MESSY + demo_frame["question"].tolist()[:200])
    for text in MESSY[:4]:  # one at a time, as the API's single questions
        assert_same_probabilities(model, [text])
    np.testing.assert_array_equal(Predictor(model).classes_, model.classes_)


def test_two_intents_and_tfidf_settings_it_does_not_compute_itself(demo_frame: pd.DataFrame) -> None:
    """Two classes give the SVM one score column; a binary, l1-normalised TF-IDF block is scored by its own
    transform."""
    two = demo_frame[demo_frame["intention"].isin(demo_frame["intention"].value_counts().index[:2])]
    model = fit_model(two["question"], two["intention"], ModelParams(sentence_weight=0))
    assert len(model.classes_) == 2
    assert_same_probabilities(model, MESSY + two["question"].tolist())

    odd = build_model(ModelParams(sentence_weight=0)).set_params(features__word__binary=True, features__char__norm="l1")
    odd.fit(demo_frame["question"].tolist(), demo_frame["intention"].to_numpy())
    assert_same_probabilities(odd, MESSY + demo_frame["question"].tolist()[:100])


def test_refuses_a_pipeline_of_another_shape(trained_model_dir: Path) -> None:
    model = load_checked(trained_model_dir / "models" / "intent_model.pkl")[0]
    clean, union, classifier = (step for _, step in model.steps)
    for steps in ([clean, union, classifier.svc_], [union, classifier],
                  [clean, clone(union).set_params(char="drop"), classifier]):
        with pytest.raises(TypeError, match="clean -> feature union -> classifier"):
            Predictor(Pipeline([(f"step{i}", step) for i, step in enumerate(steps)]))
