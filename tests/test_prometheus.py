"""The alerting rules (deploy/prometheus/alerts.yml) under ``promtool test rules``, the metric names they use, and a
real Prometheus (Debian's package) scraping a running API with two workers and evaluating the rules."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from posos_client.server import api_server, free_port, stop
from tests.binaries import require
from tests.test_api import client, model_path  # noqa: F401 - fixtures
from tests.test_metrics_model import samples

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES, RULE_TESTS, CONFIG = DEPLOY / "alerts.yml", DEPLOY / "alerts.test.yml", DEPLOY / "prometheus.yml"
ALERTS = {"PososUnsureShareHigh", "PososOutOfScopeShareHigh", "PososServerErrors", "PososSlowAnswers"}
START_SECONDS = 180  # imports and model loads on 2 busy cores
SCRAPED_WITHIN_SECONDS = 60
SUFFIXES = {"counter": ("_total",), "histogram": ("", "_bucket", "_count", "_sum")}  # a histogram by its name too


def test_the_alert_rules_pass_their_promtool_tests() -> None:
    """Each alert fires on the series of alerts.test.yml meant to fire it, and on no other."""
    promtool = require("promtool", "prometheus")
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        run = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr


def exported_names(text: str) -> set[str]:
    """Every sample name an exposition can hold, with or without samples yet."""
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in SUFFIXES.get(family.type, ("",))}


def test_the_rules_and_their_tests_name_only_metrics_the_api_exports(client: TestClient) -> None:  # noqa: F811
    exported = exported_names(client.get("/metrics").text)
    for path in (RULES, RULE_TESTS):
        named = set(re.findall(r"\bposos_[a-z_]+", path.read_text()))
        assert named and named <= exported, f"{path.name} names metrics /metrics lacks: {sorted(named - exported)}"
    assert {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]} \
        == ALERTS


QUESTIONS = ["puis-je prendre du doliprane enceinte ?", "effets secondaires du levothyrox", "\u200b",
             "recette des crêpes", "posologie de l'amoxicilline chez l'enfant", "ibuprofène et alcool"]
CACHE_ENTRIES = 3  # EMBEDDING_CACHE_ENTRIES of the served API: fewer than the questions one of its workers gets
JOB = 'job="posos-intent"'


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def served(request: pytest.FixtureRequest, model_path: Path) -> Iterator[tuple[str, int]]:  # noqa: F811
    """``python -m api.serve`` with one worker, then with two (its default on 2 cores), that has answered
    ``QUESTIONS``: its URL and worker count."""
    port, workers = free_port(), request.param
    with api_server("127.0.0.1", port, START_SECONDS, model_path, workers=workers,
                    env={"EMBEDDING_CACHE_ENTRIES": str(CACHE_ENTRIES)}), httpx.Client(timeout=60) as http:
        url = f"http://127.0.0.1:{port}"
        for question in QUESTIONS:
            assert http.get(f"{url}/intent", params={"query": question}).status_code == 200
        yield url, workers


@pytest.mark.slow
def test_the_model_metrics_sum_the_workers_and_the_processes_are_each_workers(served: tuple[str, int]) -> None:
    url, workers = served
    metrics = samples(httpx.get(f"{url}/metrics", timeout=30).text)
    total = lambda name: sum(value for _, value in metrics.get(name, []))  # noqa: E731
    assert total("posos_predicted_intent_total") == len(QUESTIONS)
    assert total("posos_answer_confidence_count") == total("posos_question_chars_count") == len(QUESTIONS)
    assert total("posos_question_chars_sum") == sum(map(len, QUESTIONS))
    assert ({"reason": "no_content"}, 1.0) in metrics["posos_unsure_total"]
    assert total("posos_embedding_cache_misses_total") + total("posos_embedding_cache_hits_total") == len(QUESTIONS)
    assert metrics["posos_batcher_queued_questions"] == [({}, 0.0)]
    worker_pids = {labels["pid"] for labels, _ in metrics["posos_process_resident_memory_bytes"]
                   if labels["role"] == "worker"}
    assert len(worker_pids) == workers
    for name in ("posos_process_cpu_seconds_total", "posos_process_open_fds", "posos_process_start_seconds_since_boot"):
        assert {labels["pid"] for labels, _ in metrics[name] if labels["role"] == "worker"} == worker_pids
    cached = {labels["pid"]: value for labels, value in metrics["posos_embedding_cache_entries"]}
    assert set(cached) <= worker_pids and 0 < max(cached.values()) <= CACHE_ENTRIES  # the setting bounds each cache
    assert {labels["flag"] for labels, _ in metrics["posos_model_validation_share"]} == {"unsure", "out_of_scope"}


def query(http: httpx.Client, url: str, promql: str) -> list[float]:
    """The values of an instant query's result vector, from Prometheus' HTTP API."""
    answer = http.get(f"{url}/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    return [float(result["value"][1]) for result in answer["data"]["result"]]


@pytest.fixture
def prometheus(served: tuple[str, int], tmp_path: Path) -> Iterator[str]:
    """Prometheus on deploy/prometheus/prometheus.yml (its rules included), scraping ``served`` every second."""
    binary = require("prometheus", "prometheus")
    config = yaml.safe_load(CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [served[0].removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={tmp_path / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.mark.slow
def test_prometheus_scrapes_the_api_and_evaluates_the_rules(prometheus: str, served: tuple[str, int]) -> None:
    wanted = {  # what Prometheus must hold once it has scraped the API
        f"sum(posos_predicted_intent_total{{{JOB}}})": [float(len(QUESTIONS))],  # the workers' answers, summed
        f'posos_unsure_total{{{JOB},reason="no_content"}}': [1.0],
        f'count(posos_process_resident_memory_bytes{{{JOB},role="worker"}} > 0)': [float(served[1])],
        f"count(posos_model_validation_share{{{JOB}}})": [2.0],
        f"count(posos_model_info{{{JOB}}})": [1.0],
    }
    deadline = time.monotonic() + SCRAPED_WITHIN_SECONDS
    with httpx.Client(timeout=10) as http:
        while True:
            try:
                seen = {promql: query(http, prometheus, promql) for promql in wanted}
                groups = http.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
            except (httpx.TransportError, ValueError):  # still starting: refused, or a 503 in plain text
                seen, groups = {}, []
            rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
            if seen == wanted and set(rules) == ALERTS and "unknown" not in rules.values():  # each rule evaluated
                break
            assert time.monotonic() < deadline, f"after {SCRAPED_WITHIN_SECONDS} s: {seen}, rules: {rules}"
            time.sleep(1)
    assert set(rules.values()) == {"ok"}, rules  # every rule evaluates on the real series without error
