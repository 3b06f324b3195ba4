"""End to end: `python -m api.serve` serving a model trained on the fixtures, the `make test` client run against it."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

import posos_client.submit as submit
from posos_client.server import free_port, local_server
from intent_lib import results
from intent_lib.data import DEMO_DIR, load_questions

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def model_file(trained_model_dir: Path) -> Path:
    return trained_model_dir / "models" / "intent_model.pkl"


@pytest.fixture(scope="module")
def server(model_file: Path):
    """A real server on a free loopback port serving the fixture model; yields its URL."""
    url = f"http://127.0.0.1:{free_port()}"
    with httpx.Client() as client, local_server(url, client, 120, model_file):
        yield url


@pytest.fixture()
def input_csv(tmp_path: Path) -> Path:
    """The demo test questions plus awkward ones: blank, emoji, HTML, control characters, a long word."""
    rows = load_questions(DEMO_DIR / "input_test.csv")[["ID", "question"]].values.tolist()
    next_id = max(int(i) for i, _ in rows) + 1
    odd = ["", "   ", "mal de tête 🤕 doliprane ?", "<b>posologie</b> &amp; enfants", "doli\x07prane", "x" * 3000,
           'question avec "guillemets", virgules, et\nretour à la ligne']
    rows += [[next_id + i, q] for i, q in enumerate(odd)]
    path = tmp_path / "input_test.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ID", "question"])
        writer.writerows(rows)
    return path


def run_client(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posos_client.submit", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def check_predictions(url: str, input_csv: Path, output: Path) -> None:
    questions = load_questions(input_csv)
    with output.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["ID", "intention"]
    assert len(rows) == len(questions) + 1
    with httpx.Client() as client:
        for (row_id, intention), (qid, question) in zip(rows[1:], questions[["ID", "question"]].values.tolist()):
            assert int(row_id) == int(qid)
            expected_query = question if question.strip() else submit.BLANK_PLACEHOLDER
            answer = client.get(f"{url}/intent", params={"query": expected_query, "top_k": 1}).json()
            assert int(intention) == answer["intent"], (qid, question)


def test_client_against_a_running_server(server: str, model_file: Path, input_csv: Path, tmp_path: Path) -> None:
    output = tmp_path / "reports" / "predictions_test.csv"
    run = run_client("--url", server, "--input", str(input_csv), "--output", str(output), "--batch-size", "16",
                     "--model", str(model_file.parent))
    assert run.returncode == 0, run.stderr
    n = len(load_questions(input_csv))
    assert f"{n:,} questions in" in run.stdout
    assert "requests/s" in run.stdout and "Most predicted intents:" in run.stdout
    assert f"{-(-n // 16)} requests" in run.stdout
    assert "2 blank question(s)" in run.stderr
    assert "starting one" not in run.stderr
    check_predictions(server, input_csv, output)


def test_client_writes_the_unsure_column_beside_the_submission_when_asked(server: str, model_file: Path,
                                                                          input_csv: Path, tmp_path: Path) -> None:
    submission, output = tmp_path / "predictions.csv", tmp_path / "with_unsure.csv"
    run = run_client("--url", server, "--input", str(input_csv), "--output", str(submission), "--unsure",
                     str(output), "--model", str(model_file.parent))
    assert run.returncode == 0, run.stderr
    check_predictions(server, input_csv, submission)  # still the challenge's two columns
    with output.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["ID", "intention", "unsure"] and "header ID,intention,unsure" in run.stdout
    questions = load_questions(input_csv)
    with httpx.Client() as client:
        for (_, _, unsure), question in zip(rows[1:], questions["question"].tolist()):
            query = question if question.strip() else submit.BLANK_PLACEHOLDER
            assert unsure == str(int(client.get(f"{server}/intent", params={"query": query}).json()["unsure"]))


def test_client_starts_and_stops_a_server_when_none_answers(model_file: Path, input_csv: Path, tmp_path: Path,
                                                           server: str) -> None:
    port = free_port()
    output = tmp_path / "predictions.csv"
    run = run_client("--url", f"http://localhost:{port}", "--input", str(input_csv), "--output", str(output),
                     env={"MODEL_PATH": str(model_file)})
    assert run.returncode == 0, run.stderr
    assert "starting one for this run" in run.stderr
    assert not port_answers(port), "the server started for the run is still running"
    check_predictions(server, input_csv, output)


def test_client_reports_a_server_that_cannot_start(tmp_path: Path, input_csv: Path) -> None:
    missing = tmp_path / "nowhere" / "intent_model.pkl"
    run = run_client("--url", f"http://127.0.0.1:{free_port()}", "--input", str(input_csv),
                     "--output", str(tmp_path / "out.csv"), env={"MODEL_PATH": str(missing)})
    assert run.returncode == 1
    assert f"No model at {missing}: run `make train` first" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.csv").exists()


def test_client_without_server_and_no_start_fails(tmp_path: Path, input_csv: Path) -> None:
    run = run_client("--url", f"http://127.0.0.1:{free_port()}", "--no-start", "--input", str(input_csv),
                     "--output", str(tmp_path / "out.csv"))
    assert run.returncode == 1
    assert "no API answers at" in run.stderr and "make api" in run.stderr


def test_client_refuses_a_server_serving_another_model(server: str, model_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    card = json.loads(model_file.with_name("model_card.json").read_text(encoding="utf-8"))
    (other / "model_card.json").write_text(json.dumps(card | {"model_sha256": "f" * 64}), encoding="utf-8")
    output = tmp_path / "out.csv"
    run = run_client("--url", server, "--input", "demo", "--output", str(output), "--model", str(other))
    assert run.returncode == 1 and not output.exists()
    assert f"serves model {card['model_sha256'][:12]}…, not {other / 'intent_model.pkl'}" in run.stderr
    assert "--accept-any-model" in run.stderr and "Traceback" not in run.stderr
    run = run_client("--url", server, "--input", "demo", "--output", str(output), "--model", str(other),
                     "--accept-any-model")
    assert run.returncode == 0 and output.is_file() and "warning: the API at" in run.stderr
    run = run_client("--url", server, "--input", "demo", "--output", str(output), "--model", str(tmp_path / "none"))
    assert run.returncode == 1 and "cannot check which model the API serves: No model card" in run.stderr


def test_client_missing_input_fails_clearly(tmp_path: Path, server: str) -> None:
    run = run_client("--url", server, "--input", str(tmp_path / "absent.csv"), "--output", str(tmp_path / "o.csv"))
    assert run.returncode == 1
    assert "absent.csv: file not found" in run.stderr


def mock_api(monkeypatch: pytest.MonkeyPatch, answer: Callable[[list[str]], httpx.Response]) -> None:
    """The client's HTTP goes to ``answer(queries)`` for POST /intent (health and version answer 200)."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path in ("/health", "/version"):
            return httpx.Response(200, json={"status": "ok"})
        return answer(json.loads(request.content)["queries"])

    real_client = httpx.Client
    monkeypatch.setattr(submit.httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(handler),
                                                                              **kw))


def numbered_input(tmp_path: Path, n: int) -> Path:
    """Questions ``q1`` .. ``qn`` with IDs 1 .. n."""
    path = tmp_path / "numbered.csv"
    path.write_text("ID,question\n" + "".join(f"{i},q{i}\n" for i in range(1, n + 1)), encoding="utf-8")
    return path


def submit_numbered(tmp_path: Path, n: int, *args: str) -> tuple[int, Path]:
    output = tmp_path / "out.csv"
    code = submit.main(["--url", "http://api.test", "--input", str(numbered_input(tmp_path, n)), "--output",
                        str(output), "--batch-size", "10", "--accept-any-model", "--model", str(tmp_path / "no-model"),
                        *args])
    return code, output


def echo(queries: list[str]) -> httpx.Response:
    """Intent = the question's number."""
    return httpx.Response(200, json={"predictions": [{"intent": int(q[1:]), "name": "x", "unsure": False}
                                                     for q in queries]})


def test_any_failed_request_exits_non_zero_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def answer(queries: list[str]) -> httpx.Response:
        if "q15" in queries:
            return httpx.Response(422, json={"status_code": 422, "detail": "queries[3] is too long"})
        return echo(queries)

    mock_api(monkeypatch, answer)
    code, output = submit_numbered(tmp_path, 40)
    assert code == 1
    assert "questions 11-20 failed: HTTP 422: queries[3] is too long" in capsys.readouterr().err
    assert not output.exists()


def test_batches_in_flight_together_are_written_in_input_order(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    together = threading.Barrier(3, timeout=30)  # batches 1-3 answer only once all three are in flight
    fourth_sent = threading.Event()  # sent once batch 2 or 3 is answered: batch 1 is answered after one of them

    def answer(queries: list[str]) -> httpx.Response:
        if queries[0] in ("q1", "q11", "q21"):
            together.wait()
        if queries[0] == "q31":
            fourth_sent.set()
        if queries[0] == "q1":
            assert fourth_sent.wait(timeout=30)
        return echo(queries)

    mock_api(monkeypatch, answer)
    code, output = submit_numbered(tmp_path, 45, "--concurrency", "3")
    assert code == 0
    assert output.read_text(encoding="utf-8").splitlines() == ["ID,intention"] + [f"{i},{i}" for i in range(1, 46)]


def test_no_batch_is_sent_after_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sent: list[str] = []

    def answer(queries: list[str]) -> httpx.Response:
        sent.append(queries[0])
        return httpx.Response(503, json={"detail": "busy"}) if queries[0] == "q11" else echo(queries)

    mock_api(monkeypatch, answer)
    code, _ = submit_numbered(tmp_path, 100, "--concurrency", "1")
    assert code == 1
    assert sent == ["q1", "q11"]


def test_an_answer_that_is_not_json_stops_the_run_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mock_api(monkeypatch, lambda queries: httpx.Response(200, text="<html>proxy error</html>"))
    code, output = submit_numbered(tmp_path, 25)
    assert code == 1 and not output.exists()
    assert "is not a JSON object: '<html>proxy error</html>'" in capsys.readouterr().err


def test_api_benchmark_runs_bounded_against_the_server(server: str, tmp_path: Path) -> None:
    """`make bench-api` on a tiny budget, without warm-up (shares this module's server)."""
    output = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "bench/bench_api.py", "--url", server, "--concurrency", "1", "4",
                          "--requests", "40", "--warmup", "0", "--batches", "2", "--batch-size", "10",
                          "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(output.read_text(encoding="utf-8"))
    assert [level["concurrency"] for level in result["get"]] == [1, 4]
    for level in result["get"]:
        assert level["requests"] == 40 and level["errors"] == 0
        assert 0 < level["p50_ms"] <= level["p95_ms"] <= level["p99_ms"] <= level["max_ms"]
    assert result["batch"]["questions"] == 20
    section = results.bench_section(output, results.BENCHES["bench_api"][1])  # what `make results` quotes
    card = httpx.get(f"{server}/version").json()
    assert section["source"]["dataset_sha256"] == card["dataset"]["sha256"]
    assert section["measurement"]["command"].startswith("python bench/bench_api.py --url")
    assert section["workers"] >= 1 and section["get"] == result["get"]
