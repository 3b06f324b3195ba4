"""The OpenAPI document against the running server: schemathesis generates valid and invalid requests for
every operation and checks every answer (no 5xx, status codes, content types, headers and bodies as
documented, invalid data rejected, valid data accepted, 405 with Allow for undocumented methods)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from posos_client.server import api_server, free_port

MIN_CASES = 1_000
EXAMPLES_PER_OPERATION = 600  # ~1,300 cases over the 5 operations: about 30 s on 2 busy cores
SEED = 20261126  # fixed: the same cases on every run, so a failure reproduces


@pytest.fixture(scope="module")
def server_url(trained_model_dir: Path):
    port = free_port()
    with api_server("127.0.0.1", port, 180, trained_model_dir / "models" / "intent_model.pkl"):
        yield f"http://127.0.0.1:{port}"


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
