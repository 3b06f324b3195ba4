"""``make test``: classify ``data/input_test.csv`` through the API and write the challenge's submission file.

    python -m api.client [--url http://localhost:4002] [--input data/input_test.csv]
                         [--output reports/predictions_test.csv] [--batch-size 200]

Questions go to ``POST /intent`` in batches, with a progress bar; the answers are written as ``ID,intention``.
When nothing answers at the URL (and it is this machine), a local uvicorn is started for the run and stopped
after it. Any failed request stops the run with a non-zero exit and the reason.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from intent_lib.data import DEMO_DIR, DataError, load_questions
from intent_lib.paths import project_root, resolve

DEFAULT_URL = "http://localhost:4002"
DEFAULT_INPUT = "data/input_test.csv"
DEFAULT_OUTPUT = "reports/predictions_test.csv"
BLANK_PLACEHOLDER = "?"  # the API refuses blank questions; a submission still needs a row for each ID
LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class ClientError(RuntimeError):
    """The run cannot go on; the message says why."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m api.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("API_URL") or DEFAULT_URL,
                        help="the API's base URL (env API_URL; default %(default)s)")
    parser.add_argument("--input", default=None,
                        help=f"ID,question CSV (default {DEFAULT_INPUT}, else the demo test set); 'demo' for the demo")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="submission CSV to write (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=200, help="questions per request, 1 to 1000")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="wait up to this many seconds for the API to become healthy (e.g. a starting container)")
    parser.add_argument("--no-start", action="store_true", help="never start a local server; fail if none answers")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for a started server")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000")
    args.url = args.url.rstrip("/")
    return args


# ------------------------------------------------------------------------------------------ input/output


def read_input(arg: str | None) -> tuple[list[int], list[str], str]:
    """IDs, questions and a description of where they came from."""
    if arg == "demo":
        source = DEMO_DIR / "input_test.csv"
    elif arg is None and not resolve(DEFAULT_INPUT).is_file():
        print(f"warning: {DEFAULT_INPUT} not found (run `make train` to decrypt the data): using the demo test "
              "questions instead.", file=sys.stderr)
        source = DEMO_DIR / "input_test.csv"
    else:
        source = resolve(arg or DEFAULT_INPUT)
    try:
        frame = load_questions(source)
    except DataError as exc:
        raise ClientError(str(exc)) from None
    if frame.empty:
        raise ClientError(f"{source}: no questions.")
    label = "demo test questions" if arg == "demo" or str(source).startswith(str(DEMO_DIR)) else str(source)
    return frame["ID"].astype(int).tolist(), frame["question"].tolist(), label


def write_predictions(path: Path, ids: list[int], intents: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["ID", "intention"])
        writer.writerows(zip(ids, intents))
    tmp.replace(path)


# ------------------------------------------------------------------------------------------ the server


def health(client: httpx.Client, url: str) -> int | None:
    """The status of ``GET /health``, or None when nothing answers."""
    try:
        return client.get(f"{url}/health", timeout=5.0).status_code
    except httpx.TransportError:
        return None


def wait_healthy(client: httpx.Client, url: str, seconds: float, process: subprocess.Popen | None = None,
                 log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while True:
        status = health(client, url)
        if status == 200:
            return
        if process is not None and process.poll() is not None:
            raise ClientError(f"the API server started for this run exited with code {process.returncode}: "
                              f"{last_error(log)}")
        if time.monotonic() > deadline:
            seen = "nothing answers" if status is None else f"/health answers {status}"
            raise ClientError(f"the API at {url} is not ready after {seconds:.0f} s ({seen}).")
        time.sleep(0.2)


def last_error(log: Path | None) -> str:
    """The server's reason for failing: its last ERROR line other than uvicorn's generic one."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log and log.is_file() else []
    errors = [line.split(":", 1)[1].strip() for line in lines
              if line.startswith("ERROR:") and "Application startup failed" not in line]
    return errors[-1] if errors else (lines[-1].strip() if lines else "no output")


@contextmanager
def local_server(url: str, client: httpx.Client, start_timeout: float, model_path: str | os.PathLike[str] | None = None
                 ) -> Iterator[None]:
    """Run uvicorn serving ``api.app:app`` on the URL's port until the block ends (model: ``MODEL_PATH``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = "127.0.0.1" if parts.hostname in ("localhost", "0.0.0.0") else parts.hostname
    command = [sys.executable, "-m", "uvicorn", "api.app:app", "--host", str(host), "--port", str(port),
               "--no-access-log"]
    model = str(model_path or os.environ.get("MODEL_PATH") or "models/intent_model.pkl")
    print(f"No API answers at {url}: starting one for this run ({model}).", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="posos-api-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(command, cwd=project_root(), stdout=out, stderr=subprocess.STDOUT,
                                       env={**os.environ, "MODEL_PATH": model})
        started = time.perf_counter()
        try:
            wait_healthy(client, url, start_timeout, process, log)
            print(f"API ready in {time.perf_counter() - started:.1f} s.", file=sys.stderr)
            yield
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def api_available(args: argparse.Namespace, client: httpx.Client) -> Iterator[None]:
    """Yield once an API answers at ``args.url``: the one already there, or one started for the run."""
    status = health(client, args.url)
    if status == 200:
        yield
        return
    if status is None and not args.no_start and urlsplit(args.url).hostname in LOOPBACK and not args.wait:
        with local_server(args.url, client, args.start_timeout):
            yield
        return
    if args.wait:
        wait_healthy(client, args.url, args.wait)
        yield
        return
    if status is None:
        raise ClientError(f"no API answers at {args.url}: start one with `make api`, or set API_URL.")
    raise ClientError(f"the API at {args.url} is not ready: GET /health answers {status}.")


# ------------------------------------------------------------------------------------------ the run


def error_reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"HTTP {response.status_code}: {detail or response.text[:300] or response.reason_phrase}"


def classify(client: httpx.Client, url: str, questions: list[str], batch_size: int, timeout: float
             ) -> tuple[list[int], list[str], int]:
    """Intents and names of every question, in order; and the number of requests sent."""
    intents: list[int] = []
    names: list[str] = []
    requests = 0
    with tqdm(total=len(questions), unit="q", desc="predicting", file=sys.stderr, disable=None) as bar:
        for start in range(0, len(questions), batch_size):
            batch = questions[start:start + batch_size]
            try:
                response = client.post(f"{url}/intent", json={"queries": batch, "top_k": 1}, timeout=timeout)
            except httpx.HTTPError as exc:
                raise ClientError(f"request for questions {start + 1}-{start + len(batch)} failed: "
                                  f"{type(exc).__name__}: {exc}") from None
            requests += 1
            if response.status_code != 200:
                raise ClientError(f"request for questions {start + 1}-{start + len(batch)} failed: "
                                  f"{error_reason(response)}")
            predictions = response.json().get("predictions", [])
            if len(predictions) != len(batch):
                raise ClientError(f"request for questions {start + 1}-{start + len(batch)}: "
                                  f"{len(predictions)} predictions for {len(batch)} questions.")
            intents.extend(int(p["intent"]) for p in predictions)
            names.extend(str(p["name"]) for p in predictions)
            bar.update(len(batch))
    return intents, names, requests


def summary(intents: list[int], names: list[str], seconds: float, requests: int, top: int = 10) -> str:
    n = len(intents)
    counts = collections.Counter(zip(intents, names))
    lines = [f"{n:,} questions in {seconds:.2f} s: {requests} requests ({requests / seconds:.1f} requests/s, "
             f"{n / seconds:,.0f} questions/s); {len(counts)} distinct intents predicted."]
    lines.append("Most predicted intents:")
    for (intent, name), count in counts.most_common(top):
        lines.append(f"  {intent:>3}  {name:<45} {count:>6,}  {100 * count / n:5.1f} %")
    if len(counts) > top:
        rest = sum(c for _, c in counts.most_common()[top:])
        lines.append(f"  ...  {len(counts) - top} other intents{'':<28} {rest:>6,}  {100 * rest / n:5.1f} %")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ids, questions, source = read_input(args.input)
        blank = [i for i, q in enumerate(questions) if not q.strip()]
        if blank:
            print(f"warning: {len(blank)} blank question(s) (first: ID {ids[blank[0]]}) sent as "
                  f"{BLANK_PLACEHOLDER!r}.", file=sys.stderr)
            for i in blank:
                questions[i] = BLANK_PLACEHOLDER
        output = resolve(args.output)
        with httpx.Client(headers={"Accept": "application/json"}) as client:
            with api_available(args, client):
                print(f"Classifying {len(questions):,} {source} with {args.url} ...", file=sys.stderr)
                started = time.perf_counter()
                intents, names, requests = classify(client, args.url, questions, args.batch_size, args.timeout)
                seconds = time.perf_counter() - started
        write_predictions(output, ids, intents)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    print(summary(intents, names, seconds, requests))
    print(f"Wrote {output} ({len(ids):,} rows, header ID,intention).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
