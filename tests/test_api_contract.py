"""The OpenAPI document against the running server: schemathesis generates valid and invalid requests for
every operation and checks every answer (no 5xx, status codes, content types, headers and bodies as
documented, invalid data rejected, valid data accepted, 405 with Allow for undocumented methods)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_api_hardening import ROOT, free_port

MIN_CASES = 1_000
EXAMPLES_PER_OPERATION = 600  # ~1,300 cases over the 5 operations: about 30 s on 2 busy cores
SEED = 20261126  # fixed: the same cases on every run, so a failure reproduces


@pytest.fixture(scope="module")
def server_url(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    log = tmp_path_factory.mktemp("contract") / "server.log"  # a file: an unread pipe would fill and block
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1", "DRAIN_SECONDS": "0",
           "MODEL_PATH": str(trained_model_dir / "models" / "intent_model.pkl")}
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "api.serve"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.slow
def test_schemathesis_finds_nothing_over_1000_cases(server_url: str, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -r requirements/dev.lock)")
    run = subprocess.run(
        [st, "run", f"{server_url}/schema/openapi.json", "--checks", "all", "--mode", "all",
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--workers", "1",
         "--generation-database", "none", "--no-color", "--request-timeout", "60"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= MIN_CASES, output[-3000:]
    assert "5 selected / 5 total" in output and "5xx" not in output.split("SUMMARY")[-1], output[-3000:]
