"""API benchmark (``make bench-api``): single-query GET latency and throughput at several concurrencies, and
batch throughput, against a running server (one is started for the run when nothing answers at the URL).

    python bench/bench_api.py [--url http://localhost:4002] [--concurrency 1 8 32] [--requests 2000]
                              [--max-seconds 15] [--batch-size 100] [--batches 20]

The load generator is a small asyncio HTTP/1.1 client over keep-alive connections (one per concurrent user),
so that its own overhead stays well under the server's; it runs on the same machine as the server.
Every level is bounded by a request count and a time limit. Results are printed and written as JSON to
``bench/results/bench_api.json``, with the command, commit, date, load and the served model's dataset (what
`make results` quotes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from api.settings import MAX_BATCH
from intent_lib.data import DEMO_DIR, load_questions
from intent_lib.files import read_json
from intent_lib.paths import (BENCH_API_FILE, BENCH_RESULTS_DIR, MODEL_PATH, TEST_INPUTS, TEST_INPUTS_PATH, card_path,
                              project_root, resolve)
from intent_lib.results import bench_command, measurement, write_bench_record
from posos_client.server import health, local_server

ROOT = project_root()
RESULTS = ROOT / BENCH_RESULTS_DIR / BENCH_API_FILE
# Latency aims (ms) per concurrency: a new question alone (c=1, p50), and a small team's traffic (c=8).
AIMS = [{"concurrency": 1, "p50_ms": 5.0}, {"concurrency": 8, "p50_ms": 5.0, "p99_ms": 25.0}]


def questions() -> tuple[list[str], str]:
    path = resolve(TEST_INPUTS_PATH)
    source = path if path.is_file() else DEMO_DIR / TEST_INPUTS
    texts = [q for q in load_questions(source)["question"].tolist() if q.strip()]
    return texts, ("demo test questions" if source != path else str(path))


def local_card() -> dict[str, Any]:
    """The card of the model at ``MODEL_PATH``, which the servers a bench starts serve."""
    return read_json(card_path(resolve(os.environ.get("MODEL_PATH", str(MODEL_PATH)))))


def record(started: dict[str, Any], card: dict[str, Any], figures: dict[str, Any], output: Path) -> None:
    """Write a server bench's figures: the dataset is the one the served model was trained on (its card)."""
    write_bench_record(output, started, card["dataset"]["source"], card["dataset"]["sha256"], figures)


def worker_count(client: httpx.Client, url: str) -> int:
    """How many workers the server at ``url`` runs, from its process metrics."""
    lines = client.get(f"{url}/metrics").text.splitlines()
    return sum(line.startswith("posos_process_resident_memory_bytes{") and 'role="worker"' in line for line in lines)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


class Connection:
    """One keep-alive HTTP/1.1 connection sending requests and reading whole responses."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, target: str) -> int:
        return await self.send("GET", target)

    async def send(self, method: str, target: str, body: bytes = b"") -> int:
        """One request; the response's status once its whole body is read."""
        assert self.reader and self.writer
        head_lines = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n"
        if body:
            head_lines += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head_lines.encode("ascii") + b"\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


async def run_level(host: str, port: int, targets: list[str], concurrency: int, total: int, max_seconds: float
                    ) -> dict[str, float]:
    """``concurrency`` users sending GETs back to back until ``total`` requests or ``max_seconds``."""
    connections = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def user(connection: Connection) -> None:
        nonlocal sent, errors
        while sent < total and time.perf_counter() < deadline:
            target = targets[sent % len(targets)]
            sent += 1
            started = time.perf_counter()
            status = await connection.get(target)
            latencies.append(time.perf_counter() - started)
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(user(c) for c in connections))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in connections))
    ms = sorted(1000 * x for x in latencies)
    return {"concurrency": concurrency, "requests": len(ms), "errors": errors, "seconds": round(elapsed, 3),
            "throughput_rps": round(len(ms) / elapsed, 1), "p50_ms": round(percentile(ms, 50), 2),
            "p95_ms": round(percentile(ms, 95), 2), "p99_ms": round(percentile(ms, 99), 2),
            "max_ms": round(ms[-1], 2), "mean_ms": round(statistics.fmean(ms), 2)}


def run_batches(client: httpx.Client, url: str, texts: list[str], batch_size: int, batches: int,
                max_seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    questions_sent = 0
    deadline = time.perf_counter() + max_seconds
    started = time.perf_counter()
    for i in range(batches):
        if time.perf_counter() > deadline:
            break
        offset = (i * batch_size) % len(texts)
        batch = (texts[offset:] + texts)[:batch_size]
        t0 = time.perf_counter()
        response = client.post(f"{url}/intent", json={"queries": batch, "top_k": 3}, timeout=120)
        latencies.append(time.perf_counter() - t0)
        response.raise_for_status()
        questions_sent += len(batch)
    elapsed = time.perf_counter() - started
    ms = sorted(1000 * x for x in latencies)
    return {"batch_size": batch_size, "batches": len(ms), "questions": questions_sent, "seconds": round(elapsed, 3),
            "questions_per_s": round(questions_sent / elapsed, 1), "p50_batch_ms": round(percentile(ms, 50), 1),
            "max_batch_ms": round(ms[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("API_URL") or "http://localhost:4002")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="GET requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=100, help="GET requests before measuring")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="time limit of each level")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if min(args.requests, args.batch_size, *args.concurrency) < 1 or args.warmup < 0 or args.batches < 0:
        parser.error("--requests, --batch-size and every --concurrency must be at least 1; --warmup and --batches "
                     "at least 0")
    if args.max_seconds <= 0 or args.batch_size > MAX_BATCH:
        parser.error(f"--max-seconds must be above 0 and --batch-size at most {MAX_BATCH}")
    url = args.url.rstrip("/")
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 80
    texts, source = questions()
    targets = [f"/intent?query={quote(t, safe='')}&top_k=3" for t in texts]

    with httpx.Client() as client:
        running = health(client, url) == 200
        with nullcontext() if running else local_server(url, client, 180):
            card = client.get(f"{url}/version").json()
            workers = worker_count(client, url)
            started = measurement(bench_command(argv))
            print(f"Benchmarking {url} (model {card.get('model_version')}, {source}, {len(texts):,} questions; "
                  f"{os.cpu_count()} CPUs, server {'already running' if running else 'started for the run'})")
            if args.warmup:
                asyncio.run(run_level(host, port, targets, 4, args.warmup, args.max_seconds))
            levels = []
            for concurrency in args.concurrency:
                level = asyncio.run(run_level(host, port, targets, concurrency, args.requests, args.max_seconds))
                levels.append(level)
                print(f"  GET  c={concurrency:<3} {level['requests']:>6} req  {level['throughput_rps']:>8.1f} req/s  "
                      f"p50 {level['p50_ms']:>7.2f} ms  p95 {level['p95_ms']:>7.2f} ms  p99 {level['p99_ms']:>7.2f} ms"
                      f"  max {level['max_ms']:>7.2f} ms  errors {level['errors']}")
            batch = None
            if args.batches > 0:
                batch = run_batches(client, url, texts, args.batch_size, args.batches, args.max_seconds)
                print(f"  POST batches of {batch['batch_size']}: {batch['questions']:,} questions in "
                      f"{batch['seconds']:.2f} s = {batch['questions_per_s']:,.0f} questions/s "
                      f"(p50 {batch['p50_batch_ms']:.0f} ms per batch)")

    for aim in AIMS:
        aimed = next((lv for lv in levels if lv["concurrency"] == aim["concurrency"]), None)
        if aimed:
            bounds = {k: v for k, v in aim.items() if k != "concurrency"}
            wanted = " and ".join(f"{k.removesuffix('_ms')} < {v} ms" for k, v in bounds.items())
            found = ", ".join(f"{k.removesuffix('_ms')} {aimed[k]} ms" for k in bounds)
            ok = all(aimed[k] < v for k, v in bounds.items())
            print(f"Aim at c={aim['concurrency']}: {wanted}: {'met' if ok else 'NOT met'} ({found})")
    record(started, card, {"url": url, "model_version": card.get("model_version"), "questions": source,
                           "python": platform.python_version(), "workers": workers, "server_started_for_run": not running,
                           "get": levels, "batch": batch, "aims": AIMS}, args.output)
    return 0 if all(lv["errors"] == 0 for lv in levels) else 1


if __name__ == "__main__":
    sys.exit(main())
