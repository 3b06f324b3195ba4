"""`make runs`' page in a real headless Chromium (Debian's package, driven by Playwright as tests/test_web.py does):
the MLflow UI, a single-page app, lists a tracked run by name, and asks nothing of any other host."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from posos_client.server import free_port, wait_healthy
from tests.test_tracking import client, empty_store, root, track  # noqa: F401 - fixtures
from tests.test_web import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")


def test_make_runs_page_lists_the_run(root: Path, tmp_path: Path) -> None:
    run_id, _ = track(root)
    run = client(root).get_run(run_id)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "runs.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(["make", "--no-print-directory", "runs", f"RUNS_PORT={port}"], cwd=REPO,
                                  env={**os.environ, "POSOS_ROOT": str(root)}, stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    outside: list[str] = []
    try:
        with httpx.Client() as http:
            wait_healthy(http, url, 240, server, log)  # MLflow's server answers /health too
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()

            def guard(route) -> None:
                if route.request.url.startswith((url, "data:", "blob:")):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(f"{url}/#/experiments/{run.info.experiment_id}/runs")
            page.get_by_text(run.info.run_name, exact=True).first.wait_for(timeout=120_000)
            page.screenshot(path=str(tmp_path / "runs.png"))
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    assert outside == [], "the UI asked another host"
