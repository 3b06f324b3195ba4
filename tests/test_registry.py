"""The model registry (intent_lib.model_registry) on a SQLite store in a tmp folder: a train run registers its
model once per sha256, ``promote`` sets the champion, ``fetch`` brings a version to the API with its record, and
the API serves it (``/version`` names it), rolls back to another without a failed request, and ``make test``
checks the served model against that version's card. Bad input gets one line each."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.versions import prepare, registry_fields
from intent_lib import baseline, model_registry, tracking
from intent_lib.__main__ import main
from intent_lib.files import read_json, sha256_of
from intent_lib.paths import (CARD_FILE, MODEL_FILE, MODEL_PATH, REGISTRY_RECORD_FILE, card_path, registry_link,
                              registry_model_path)
from posos_client import submit
from posos_client.server import free_port
from tests.test_api import edit_card
from tests.test_rollout import Server, load
from tests.test_tracking import client, empty_store, root, track  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
NAME = model_registry.REGISTERED_MODEL


def install_model(root: Path, trained_model_dir: Path, variant: int = 0) -> str:
    """The demo model (``variant`` > 0: the same model pickled with another protocol, so another sha256) and its
    card in ``root``'s models/; its sha256."""
    model = root / MODEL_PATH
    shutil.copyfile(trained_model_dir / MODEL_PATH, model)
    shutil.copyfile(card_path(trained_model_dir / MODEL_PATH), card_path(model))
    if variant:
        model.write_bytes(pickle.dumps(pickle.loads(model.read_bytes()), protocol=variant + 2))  # noqa: S301
        edit_card(model, model_sha256=sha256_of(model), model_version=f"variant-{variant}")
    return sha256_of(model)


def train_run(root: Path) -> tuple[str, str | None]:
    """One tracked train run over ``root``'s files, registered as the runner does: (run id, registry line)."""
    with tracking.tracked_run(root) as tracked:
        tracking.finish_run(tracked, {"02_train": "ran"}, {}, {})
        baseline.compare_with_baseline(tracked)
        return tracked.run_id, model_registry.register(tracked)


@pytest.fixture
def registry(root: Path, trained_model_dir: Path) -> dict[str, tuple[str, str]]:
    """Two registered versions of the demo model: version -> (run id, model sha256)."""
    first = install_model(root, trained_model_dir)
    run1, _ = train_run(root)
    second = install_model(root, trained_model_dir, variant=1)
    run2, _ = train_run(root)
    return {"1": (run1, first), "2": (run2, second)}


def test_a_run_registers_its_model_only_when_its_sha256_is_new(root: Path, trained_model_dir: Path) -> None:
    first = install_model(root, trained_model_dir)
    run1, line = train_run(root)
    assert line == f"registered as {NAME} version 1 (make promote VERSION=1 makes it the champion)"
    run2, line = train_run(root)  # the same model again (a rerun with nothing changed)
    assert line == f"model unchanged: already {NAME} version 1"
    second = install_model(root, trained_model_dir, variant=1)
    run3, line = train_run(root)
    assert line.startswith(f"registered as {NAME} version 2 ")
    store = client(root)
    versions = {v.version: v for v in store.search_model_versions(f"name = '{NAME}'")}
    assert set(versions) == {1, 2}
    assert (versions[1].run_id, versions[1].tags[model_registry.SHA_TAG]) == (run1, first)
    assert (versions[2].run_id, versions[2].tags[model_registry.SHA_TAG]) == (run3, second)
    assert versions[1].source == f"{store.get_run(run1).info.artifact_uri}/model"
    assert [store.get_run(r).data.tags[model_registry.VERSION_TAG] for r in (run1, run2, run3)] == ["1", "1", "2"]
    assert [m.name for m in store.search_registered_models()] == [NAME]


def test_a_run_without_a_model_registers_nothing(root: Path) -> None:
    (root / MODEL_PATH).unlink()
    card_path(root / MODEL_PATH).unlink()
    assert train_run(root)[1] is None
    assert client(root).search_registered_models() == []


def test_promote_sets_the_champion_which_a_baseline_and_a_fetch_can_name(
        root: Path, registry: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_registry.promote(root, "1") == f"{NAME} version 1 is the champion (models:/{NAME}@champion)"
    assert client(root).get_model_version_by_alias(NAME, "champion").version == 1
    monkeypatch.setenv(baseline.BASELINE_ENV, baseline.CHAMPION)
    _, line = track(root)
    assert line.startswith(f"vs run {registry['1'][0]}:")
    model_registry.promote(root, "2")
    assert model_registry.resolve(root, f"models:/{NAME}@champion").version == 2
    with pytest.raises(tracking.TrackingError, match=f"\\({NAME} has versions 1, 2; champion = 2\\)$"):
        model_registry.fetch(root, f"models:/{NAME}/3")


@pytest.mark.parametrize("call, message", [
    (lambda root: model_registry.promote(root, "7"),
     f"^VERSION=7: no such version in the registry \\({NAME} has versions 1, 2; no alias\\)$"),
    (lambda root: model_registry.promote(root, "latest"), "^VERSION=latest: a version number is expected"),
    (lambda root: model_registry.fetch(root, f"models:/{NAME}/9"),
     f"^models:/{NAME}/9: no such version in the registry \\({NAME} has versions 1, 2; no alias\\)$"),
    (lambda root: model_registry.fetch(root, f"models:/{NAME}@champion"), "^models:/.*@champion: no such version"),
    (lambda root: model_registry.fetch(root, "models:/other/1"), "^models:/other/1: no such version .*no version "
                                                                 "of other is registered yet"),
    (lambda root: model_registry.fetch(root, "champion"), f"^MODEL=champion: expected models:/{NAME}/<version>"),
])
def test_an_unknown_version_or_alias_is_one_line(root: Path, registry: dict, call, message: str) -> None:
    with pytest.raises(tracking.TrackingError, match=message) as info:
        call(root)
    assert "\n" not in str(info.value)


def test_fetch_brings_a_version_with_its_record_and_the_api_copy_keeps_it(root: Path, registry: dict) -> None:
    model_registry.promote(root, "1")
    path = model_registry.fetch(root, f"models:/{NAME}@champion")
    assert path == root / registry_model_path(NAME, 1)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([MODEL_FILE, CARD_FILE, REGISTRY_RECORD_FILE])
    assert sha256_of(path) == registry["1"][1] == read_json(card_path(path))["model_sha256"]
    record = {"name": NAME, "version": "1", "run_id": registry["1"][0]}
    assert read_json(path.with_name(REGISTRY_RECORD_FILE)) == record
    # What the API's rollout keeps of it: the private copy holds the record, which /version adds to the card.
    served = root / registry_link(4002) / MODEL_FILE
    assert model_registry.link(root, path, 4002) == served
    version = prepare(served, root / "runtime")
    assert registry_fields(version.model_path) == {"registry": record}
    assert registry_fields(root / MODEL_PATH) == {}
    # Fetched again: the intact copy stays; a damaged one is downloaded again.
    before = path.stat().st_mtime_ns
    assert model_registry.fetch(root, f"models:/{NAME}/1") == path and path.stat().st_mtime_ns == before
    path.write_bytes(b"damaged")
    model_registry.fetch(root, f"models:/{NAME}/1")
    assert sha256_of(path) == registry["1"][1]
    # The link moves to another version in one step; the copy made through it comes from one folder.
    model_registry.link(root, model_registry.fetch(root, f"models:/{NAME}/2"), 4002)
    assert sha256_of(served) == registry["2"][1]
    assert registry_fields(prepare(served, root / "runtime").model_path)["registry"]["version"] == "2"


def test_the_client_checks_the_card_of_the_registry_version_being_served(root: Path, registry: dict,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSOS_ROOT", str(root))
    fetched = model_registry.fetch(root, f"models:/{NAME}/2")
    served = {"model_sha256": registry["2"][1], "registry": {"name": NAME, "version": "2"}}
    assert submit.expected_model(None, served) == fetched
    assert submit.expected_model(None, {"model_sha256": "x"}) == root / MODEL_PATH
    assert submit.expected_model(root / "elsewhere", served) == root / "elsewhere"

    def api(answer: dict):
        return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)))

    submit.check_model(api(served), "http://api.test", None, accept_any=False)
    # models/ holds version 2 (trained last): a server naming version 1 is checked against version 1's card.
    served_first = {"model_sha256": registry["1"][1], "registry": {"name": NAME, "version": "1"}}
    with pytest.raises(submit.ClientError, match="cannot check .*No model card at .*/registry/"):
        submit.check_model(api(served_first), "http://api.test", None, accept_any=False)
    model_registry.fetch(root, f"models:/{NAME}/1")
    submit.check_model(api(served_first), "http://api.test", None, accept_any=False)
    with pytest.raises(submit.ClientError, match="serves model"):
        submit.check_model(api(served_first | {"model_sha256": registry["2"][1]}), "http://api.test", None, False)


def test_the_commands_fail_in_one_line(root: Path, registry: dict, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m intent_lib promote|fetch``: an unknown version or alias, an unreachable tracking server: one line
    each, exit 1, within seconds (MLflow's own retries would take minutes)."""
    monkeypatch.setenv("POSOS_ROOT", str(root))
    unreachable = f"http://127.0.0.1:{free_port()}"
    for args, uri, expected in [(("promote", "5"), None, "VERSION=5: no such version"),
                                (("fetch", f"models:/{NAME}@best"), None, f"models:/{NAME}@best: no such version"),
                                (("fetch", f"models:/{NAME}/1"), unreachable, "failed after"),
                                (("promote", "1"), unreachable, "failed after")]:
        if uri:
            monkeypatch.setenv(tracking.URI_ENV, uri)
        caplog.clear()
        started = time.monotonic()
        assert main(list(args)) == 1
        [record] = [r for r in caplog.records if r.levelname == "ERROR"]
        message = record.getMessage()
        assert expected in message and "\n" not in message and "TRACKING=off" not in message  # a train run's remedy
        assert time.monotonic() - started < 30
    monkeypatch.delenv(tracking.URI_ENV)
    capsys.readouterr()
    assert main(["fetch", f"models:/{NAME}/2", "--port", "4999"]) == 0
    assert capsys.readouterr().out.strip() == str(registry_link(4999) / MODEL_FILE)


def make(root: Path, *args: str, log: Path | None = None, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "POSOS_ROOT": str(root), "RUNTIME": "local", "WORKERS": "2", "DRAIN_SECONDS": "0",
                   "POSOS_RUNTIME_DIR": str(root / "runtime"), **env}
    sink = log.open("wb") if log else subprocess.PIPE
    return subprocess.Popen(["make", "--no-print-directory", *args], cwd=REPO, env=environment, stdout=sink,
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_serve_the_champion_roll_back_under_load_and_make_test_checks_the_served_version(
        root: Path, registry: dict, tmp_path: Path) -> None:
    """make api MODEL=models:/posos-intent@champion serves version 2; make reload MODEL=models:/posos-intent/1
    switches to version 1 without a failed request; make test then checks version 1's card."""
    model_registry.promote(root, "2")
    port = free_port()
    log = tmp_path / "api.log"
    process = make(root, "api", f"MODEL=models:/{NAME}@champion", f"PORT={port}", log=log)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        server.wait_log(r"model version \w+ in service on 2 worker", 240)
        with httpx.Client(timeout=60) as http:
            assert http.get(f"{server.url}/version").json()["registry"] == {
                "name": NAME, "version": "2", "run_id": registry["2"][0]}
            old = server.version(http)
            stop, answers = threading.Event(), []
            clients = [threading.Thread(target=load, args=(server.url, stop, answers)) for _ in range(4)]
            for thread in clients:
                thread.start()
            mark = len(server.lines())
            rollback = make(root, "reload", f"MODEL=models:/{NAME}/1", f"PORT={port}")
            output = rollback.communicate(timeout=120)[0].decode()
            assert rollback.returncode == 0, output
            server.wait_log(r"model version \w+ in service, replacing", 120, after=mark)
            time.sleep(1.0)
            stop.set()
            for thread in clients:
                thread.join(60)
            card = http.get(f"{server.url}/version").json()
            assert card["registry"]["version"] == "1" and card["model_sha256"] == registry["1"][1]
            new = server.version(http)
        assert [a.status for a in answers if a.status != 200] == [], "requests failed across the rollback"
        assert new != old and {a.version for a in answers} == {old, new}
        test = make(root, "test", f"API_URL={server.url}", "TEST_ARGS=--input demo --concurrency 2")
        output = test.communicate(timeout=300)[0].decode()
        assert test.returncode == 0 and "Wrote" in output, output
        assert process.poll() is None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
