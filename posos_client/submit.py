"""``make test``: classify the test questions through the API and write the challenge's submission file.

    python -m posos_client.submit [--url http://localhost:4002] [--input CSV] [--output CSV] [--batch-size 200]
                                  [--concurrency 4] [--unsure [CSV]]

Questions go to ``POST /intent`` in batches, ``--concurrency`` at a time so that every server worker has one
(connections land on workers at random), with a progress bar; the answers are written as ``ID,intention``, the
challenge's submission format. ``--unsure`` also writes a second file (default
``reports/predictions_test_unsure.csv``) with a third column ``unsure``, 1 when the model flagged its answer unsure.
When nothing answers at the URL (and it is this machine), ``python -m api.serve`` is started for the run and stopped
after it. Before any question is sent, the server's model must be the expected one (the sha256 of ``/version``
against the card beside ``--model``; without ``--model``, the card of the version the server says it serves: a
registry version's fetched copy when ``/version`` names one, else models/'s) unless ``--accept-any-model``. Any
failed request stops the run with a non-zero exit and the reason.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import queue
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from api.settings import MAX_BATCH
from intent_lib.artefacts import ModelIntegrityError, read_checked_card
from intent_lib.data import DEMO_DIR, DataError, load_questions
from intent_lib.paths import (MODEL_FILE, MODEL_PATH, PREDICTIONS_PATH, TEST_INPUTS, TEST_INPUTS_PATH,
                              UNSURE_PREDICTIONS_PATH, registry_model_path, resolve)
from posos_client.server import LOOPBACK, ServerError, health, local_server, wait_healthy

DEFAULT_URL = "http://localhost:4002"
DEFAULT_CONCURRENCY = 4  # batches in flight: with 2 server workers, both get one unless all 4 land on one (1 in 8)
BLANK_PLACEHOLDER = "?"  # the API refuses blank questions; a submission still needs a row for each ID


class ClientError(RuntimeError):
    """The run cannot go on; the message says why."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m posos_client.submit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("API_URL") or DEFAULT_URL,
                        help="the API's base URL (env API_URL; default %(default)s)")
    parser.add_argument("--input", default=None,
                        help=f"ID,question CSV (default {TEST_INPUTS_PATH}, else the demo test set); 'demo' for the demo")
    parser.add_argument("--output", default=str(PREDICTIONS_PATH), help="submission CSV to write (default %(default)s)")
    parser.add_argument("--unsure", nargs="?", const=str(UNSURE_PREDICTIONS_PATH), default=None, metavar="CSV",
                        help="also write ID,intention,unsure (1/0) to CSV (default %(const)s); the submission file "
                             "stays in the challenge's format")
    parser.add_argument("--batch-size", type=int, default=200, help=f"questions per request, 1 to {MAX_BATCH}")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="batches in flight at once (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="wait up to this many seconds for the API to become healthy (e.g. a starting container)")
    parser.add_argument("--no-start", action="store_true", help="never start a local server; fail if none answers")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for a started server")
    parser.add_argument("--model", default=os.environ.get("MODEL_PATH"),
                        help="the model the server must serve, a pickle or its folder (its card's sha256 is compared "
                             "with /version; env MODEL_PATH; default: the fetched copy of the registry version "
                             f"/version names, else {MODEL_PATH}); also what a started server loads")
    parser.add_argument("--accept-any-model", action="store_true",
                        help="classify with whatever model the server has, even another than --model")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch-size must be between 1 and {MAX_BATCH}")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    args.url = args.url.rstrip("/")
    if args.model is not None:
        args.model = resolve(args.model)
        if args.model.is_dir():
            args.model = args.model / MODEL_FILE
    return args


# ------------------------------------------------------------------------------------------ input/output


def read_input(arg: str | None) -> tuple[list[int], list[str], str]:
    """IDs, questions and a description of where they came from."""
    if arg == "demo":
        source = DEMO_DIR / TEST_INPUTS
    elif arg is None and not resolve(TEST_INPUTS_PATH).is_file():
        print(f"warning: {TEST_INPUTS_PATH} not found (run `make train` to decrypt the data): using the demo test "
              "questions instead.", file=sys.stderr)
        source = DEMO_DIR / TEST_INPUTS
    else:
        source = resolve(arg or TEST_INPUTS_PATH)
    try:
        frame = load_questions(source)
    except DataError as exc:
        raise ClientError(str(exc)) from None
    if frame.empty:
        raise ClientError(f"{source}: no questions.")
    label = "demo test questions" if arg == "demo" or str(source).startswith(str(DEMO_DIR)) else str(source)
    return frame["ID"].astype(int).tolist(), frame["question"].tolist(), label


def write_predictions(path: Path, ids: list[int], intents: list[int], unsure: list[bool] | None = None) -> None:
    """``ID,intention`` rows; with ``unsure``, a third column of 1/0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        if unsure is None:
            writer.writerow(["ID", "intention"])
            writer.writerows(zip(ids, intents))
        else:
            writer.writerow(["ID", "intention", "unsure"])
            writer.writerows(zip(ids, intents, (int(u) for u in unsure)))
    tmp.replace(path)


@contextmanager
def api_available(args: argparse.Namespace, client: httpx.Client) -> Iterator[None]:
    """Yield once an API answers at ``args.url``: the one already there, or one started for the run."""
    status = health(client, args.url)
    if status == 200:
        yield
        return
    if status is None and not args.no_start and urlsplit(args.url).hostname in LOOPBACK and not args.wait:
        with local_server(args.url, client, args.start_timeout, args.model):
            yield
        return
    if args.wait:
        wait_healthy(client, args.url, args.wait)
        yield
        return
    if status is None:
        raise ClientError(f"no API answers at {args.url}: start one with `make api`, or set API_URL.")
    raise ClientError(f"the API at {args.url} is not ready: GET /health answers {status}.")


def served_card(client: httpx.Client, url: str) -> dict:
    """The server's ``/version`` (its model card, and the registry version it came from), {} when unreadable."""
    try:
        served = client.get(f"{url}/version", timeout=10.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return served if isinstance(served, dict) else {}


def expected_model(model: Path | None, served: dict) -> Path:
    """``model`` when given, else the model the server says it serves: the fetched copy of its registry version
    (``make api MODEL=models:/...`` fetched it), or models/'s."""
    if model is not None:
        return model
    registry = served.get("registry")
    if isinstance(registry, dict) and registry.get("name") and registry.get("version"):
        return resolve(registry_model_path(str(registry["name"]), str(registry["version"])))
    return resolve(MODEL_PATH)


def check_model(client: httpx.Client, url: str, model: Path | None, accept_any: bool) -> None:
    """Refuse a server whose model is not the expected one (sha256 of ``/version`` against ``expected_model``'s
    card)."""
    served = served_card(client, url)
    model = expected_model(model, served)
    try:
        expected = read_checked_card(model)["model_sha256"]
    except ModelIntegrityError as exc:
        if accept_any:
            return
        raise ClientError(f"cannot check which model the API serves: {exc} Pass --accept-any-model (TEST_ARGS) "
                          "to classify with the server's model anyway.") from None
    if served.get("model_sha256") == expected:
        return
    message = (f"the API at {url} serves model {str(served.get('model_sha256'))[:12]}…, not {model} "
               f"({expected[:12]}…): another server may hold the port. Stop it, set API_URL, or pass "
               "--accept-any-model to use its model.")
    if not accept_any:
        raise ClientError(message)
    print(f"warning: {message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ the run


def error_reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"HTTP {response.status_code}: {detail or response.text[:300] or response.reason_phrase}"


def predict_batch(client: httpx.Client, url: str, batch: list[str], first: int, timeout: float) -> list[dict]:
    """The predictions of one batch (questions ``first + 1`` on, for error messages); ``ClientError`` if it fails."""
    where = f"request for questions {first + 1}-{first + len(batch)}"
    try:
        response = client.post(f"{url}/intent", json={"queries": batch, "top_k": 1}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ClientError(f"{where} failed: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise ClientError(f"{where} failed: {error_reason(response)}")
    try:
        predictions = response.json().get("predictions", [])
    except (ValueError, AttributeError):
        raise ClientError(f"{where}: the answer is not a JSON object: {response.text[:100]!r}") from None
    if len(predictions) != len(batch):
        raise ClientError(f"{where}: {len(predictions)} predictions for {len(batch)} questions.")
    return predictions


def classify(client: httpx.Client, url: str, questions: list[str], batch_size: int, timeout: float,
             concurrency: int = DEFAULT_CONCURRENCY) -> tuple[list[int], list[str], list[bool], int]:
    """Intents, names and unsure flags of every question, in order; and the number of requests sent.

    ``concurrency`` daemon threads send the batches. The first failure (or Ctrl-C) ends the run at once: no
    batch is sent after it, and requests still in flight are abandoned rather than waited for."""
    starts = range(0, len(questions), batch_size)
    unsent: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(starts)):
        unsent.put(i)
    done: queue.SimpleQueue[tuple[int, list[dict] | Exception]] = queue.SimpleQueue()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            try:
                i = unsent.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, predict_batch(client, url, questions[starts[i]:starts[i] + batch_size], starts[i],
                                           timeout)))
            except Exception as exc:  # noqa: BLE001 - raised again in the calling thread
                stop.set()
                done.put((i, exc))

    for _ in range(min(concurrency, len(starts))):
        threading.Thread(target=send, name="submit", daemon=True).start()
    answers: list[list[dict]] = [[] for _ in starts]
    try:
        with tqdm(total=len(questions), unit="q", desc="predicting", file=sys.stderr, disable=None) as bar:
            for _ in starts:
                i, answer = done.get()
                if isinstance(answer, Exception):
                    raise answer
                answers[i] = answer
                bar.update(len(answer))
    finally:
        stop.set()
    predictions = [p for batch in answers for p in batch]
    return ([int(p["intent"]) for p in predictions], [str(p["name"]) for p in predictions],
            [bool(p["unsure"]) for p in predictions], len(starts))


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
                check_model(client, args.url, args.model, args.accept_any_model)
                print(f"Classifying {len(questions):,} {source} with {args.url} ...", file=sys.stderr)
                started = time.perf_counter()
                intents, names, unsure, requests = classify(client, args.url, questions, args.batch_size,
                                                            args.timeout, args.concurrency)
                seconds = time.perf_counter() - started
        write_predictions(output, ids, intents)
        if args.unsure:
            write_predictions(resolve(args.unsure), ids, intents, unsure)
    except (ClientError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130
    print(summary(intents, names, seconds, requests))
    print(f"{sum(unsure):,} answers unsure ({sum(unsure) / len(unsure):.0%}).")
    print(f"Wrote {output} ({len(ids):,} rows, header ID,intention).")
    if args.unsure:
        print(f"Wrote {resolve(args.unsure)} ({len(ids):,} rows, header ID,intention,unsure).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
