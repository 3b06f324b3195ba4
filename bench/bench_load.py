"""Load test (``make bench-load``): the API under mixed single and batch traffic, batch starvation and floods.

    python bench/bench_load.py [--requests 20000] [--concurrency 64] [--workers 2] [--batch-every 20]
                               [--batch-size 20] [--max-seconds 300] [--starvation-workers 1]
                               [--hostile-workers 1]

Starts its own servers on loopback (``python -m api.serve``, the model at ``MODEL_PATH``), so the worker count
is the one asked for, and stops them at the end. Three parts:

1. mixed load: ``--concurrency`` keep-alive users send ``--requests`` requests in all, one in ``--batch-every``
   a POST of ``--batch-size`` questions, the rest single GETs; p50/p95/p99 per kind, throughput, errors.
2. starvation (one worker by default, the worst case): GET latency idle, then while 4 clients post batches of
   500 questions back to back, then while one batch of 1,000 questions of 5,000 characters is predicted.
3. hostile (one worker by default): ordinary GET latency while 4 clients send 5,000-character runs without spaces
   (emoji, punctuation, unspaced letters, symbols, mixed scripts) by GET back to back; target p99 <= 500 ms.

Bounded by a request count and a time limit per part; results printed and written to
``bench/results/bench_load.json`` with the command, commit, date, load and the model's dataset (what `make results`
quotes). Figures measured on a shared machine are noisy: the record's load says how shared it was.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench_api import Connection, local_card, percentile, questions, record  # this folder is on sys.path

from api.settings import MAX_BATCH, MAX_QUERY_CHARS
from intent_lib.paths import BENCH_LOAD_FILE, BENCH_RESULTS_DIR, MODEL_PATH, project_root
from intent_lib.results import bench_command, measurement
from posos_client.server import ServerError, api_server, free_port

ROOT = project_root()
RESULTS = ROOT / BENCH_RESULTS_DIR / BENCH_LOAD_FILE
STARVING_CLIENTS = 4
STARVING_BATCH = 500
PROBES = 200
HOSTILE_CLIENTS = 4
FLOOD_UNITS = ("💊", "!", "a", "§±∞", "aé!💊ж中ع")  # emoji, punctuation, unspaced letters, symbols, mixed scripts
HOSTILE_P99_MS = 500  # issue 18's target for ordinary GETs during the floods


@contextmanager
def server(workers: int, start_timeout: float = 300) -> Iterator[int]:
    """``python -m api.serve`` with ``workers`` workers on a free loopback port, until the block ends."""
    port = free_port()
    try:
        with api_server("127.0.0.1", port, start_timeout, workers=workers):
            yield port
    except ServerError as exc:
        raise SystemExit(str(exc)) from None


def on_server(workers: int, part: Callable[[int, list[str]], Awaitable[dict[str, object]]],
              texts: list[str]) -> dict[str, Any]:
    """``part`` run against a server of its own with ``workers`` workers."""
    with server(workers) as port:
        return asyncio.run(part(port, texts))


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(ms[-1], 2) if ms else float("nan")}


class User:
    """One keep-alive connection; a failed request (transport error or non-200) counts as an error and the
    connection is reopened."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = Connection("127.0.0.1", port)

    statuses: Counter[str] = Counter()  # every answer by status (or exception name), over all users

    async def send(self, method: str, target: str, body: bytes = b"") -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            if self.connection.writer is None:
                await self.connection.open()
            status = str(await self.connection.send(method, target, body))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.connection.close()
            self.connection = Connection("127.0.0.1", self.port)
            status = type(exc).__name__
        User.statuses[f"{method} {status}"] += 1
        return 1000 * (time.perf_counter() - started), status == "200"


def batch_body(texts: list[str], size: int, offset: int) -> bytes:
    return json.dumps({"queries": (texts[offset % len(texts):] + texts * (size // len(texts) + 1))[:size],
                       "top_k": 3}).encode()


async def mixed(port: int, texts: list[str], args: argparse.Namespace) -> dict[str, object]:
    targets = [f"/intent?query={quote(t, safe='')}&top_k=3" for t in texts]
    latencies: dict[str, list[float]] = {"GET": [], "POST": []}
    errors = {"GET": 0, "POST": 0}
    sent = 0
    deadline = time.perf_counter() + args.max_seconds

    async def user() -> None:
        nonlocal sent
        client = User(port)
        while sent < args.requests and time.perf_counter() < deadline:
            i, sent = sent, sent + 1
            if i % args.batch_every == args.batch_every - 1:
                kind, ms_ok = "POST", await client.send("POST", "/intent", batch_body(texts, args.batch_size, i))
            else:
                kind, ms_ok = "GET", await client.send("GET", targets[i % len(targets)])
            latencies[kind].append(ms_ok[0])
            errors[kind] += not ms_ok[1]
        await client.connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in latencies.values())
    questions_done = len(latencies["GET"]) + args.batch_size * len(latencies["POST"])
    return {"requests": total, "errors": sum(errors.values()), "seconds": round(elapsed, 2),
            "throughput_rps": round(total / elapsed, 1), "questions_per_s": round(questions_done / elapsed, 1),
            "get": {**summary(latencies["GET"]), "errors": errors["GET"]},
            "post": {**summary(latencies["POST"]), "errors": errors["POST"], "batch_size": args.batch_size}}


async def probe_while(port: int, targets: list[str], background: list, probes: int = PROBES,
                      concurrency: int = 4) -> dict[str, float]:
    """GET latency from ``concurrency`` users sending ``probes`` requests while ``background`` coroutines run."""
    tasks = [asyncio.ensure_future(b) for b in background]
    await asyncio.sleep(0.5 if background else 0)  # the background load is under way
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def user() -> None:
        nonlocal sent, errors
        client = User(port)
        while sent < probes:
            i, sent = sent, sent + 1
            ms, ok = await client.send("GET", targets[i % len(targets)])
            latencies.append(ms)
            errors += not ok
            await asyncio.sleep(0.01)  # probes, not load
        await client.connection.close()

    await asyncio.gather(*(user() for _ in range(concurrency)))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {**summary(latencies), "errors": errors}


async def starvation(port: int, texts: list[str]) -> dict[str, object]:
    targets = [f"/intent?query={quote(t, safe='')}&top_k=3" for t in texts]
    idle = await probe_while(port, targets, [])
    posted: list[float] = []

    async def poster(n: int) -> None:
        client = User(port)
        while True:
            ms, _ = await client.send("POST", "/intent", batch_body(texts, STARVING_BATCH, n * STARVING_BATCH))
            posted.append(ms)

    busy = await probe_while(port, targets, [poster(n) for n in range(STARVING_CLIENTS)])
    long_batch = json.dumps({"queries": [(f"{i} " + " ".join(texts) * 50)[:MAX_QUERY_CHARS]
                                         for i in range(MAX_BATCH)]}).encode()
    giant: dict[str, float] = {}

    async def giant_batch() -> None:
        ms, ok = await User(port).send("POST", "/intent", long_batch)
        giant.update(batch_ms=round(ms, 1), batch_ok=ok)

    task = asyncio.ensure_future(giant_batch())
    await asyncio.sleep(0.5)  # the batch has reached the server and is being predicted
    during = await probe_while(port, targets, [], probes=20, concurrency=1)
    await task
    return {"idle_get": idle, "get_with_4_batch_posters": busy,
            "ratio_p50": round(busy["p50_ms"] / idle["p50_ms"], 2),
            "ratio_p99": round(busy["p99_ms"] / idle["p99_ms"], 2),
            "batches_of_500_ms": summary(posted), "get_during_1000x5000_batch": during, "giant": giant}


def flood_target(i: int) -> str:
    """The ``i``-th hostile GET: a 5,000-character run without spaces, new to the embedding cache."""
    text = f"{i}{FLOOD_UNITS[i % len(FLOOD_UNITS)] * MAX_QUERY_CHARS}"[:MAX_QUERY_CHARS]
    return f"/intent?query={quote(text, safe='')}&top_k=3"


async def hostile(port: int, texts: list[str]) -> dict[str, object]:
    """Ordinary GET latency while ``HOSTILE_CLIENTS`` clients send 5,000-character floods by GET back to back."""
    targets = [f"/intent?query={quote(t, safe='')}&top_k=3" for t in texts]
    floods: list[float] = []
    numbers = itertools.count()

    async def flooder() -> None:
        client = User(port)
        while True:
            ms, _ = await client.send("GET", flood_target(next(numbers)))
            floods.append(ms)

    ordinary = await probe_while(port, targets, [flooder() for _ in range(HOSTILE_CLIENTS)])
    return {"get_with_4_flooders": ordinary, "floods": summary(floods),
            "target_p99_ms": HOSTILE_P99_MS, "met": ordinary["p99_ms"] <= HOSTILE_P99_MS}


def line(name: str, s: dict) -> str:
    return (f"  {name:<34} n={s['n']:<6} p50 {s['p50_ms']:>8.2f} ms  p95 {s['p95_ms']:>8.2f} ms  "
            f"p99 {s['p99_ms']:>8.2f} ms  max {s['max_ms']:>8.1f} ms  errors {s.get('errors', 0)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-every", type=int, default=20, help="one request in N is a POST batch")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time limit of the mixed load")
    parser.add_argument("--starvation-workers", type=int, default=1, help="0 skips the starvation part")
    parser.add_argument("--hostile-workers", type=int, default=1, help="0 skips the hostile part")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    texts, source = questions()
    card, started = local_card(), measurement(bench_command(argv))
    print(f"Load test on loopback ({source}, {len(texts):,} questions; {os.cpu_count()} CPUs; "
          f"model {os.environ.get('MODEL_PATH', str(MODEL_PATH))})")
    with server(args.workers) as port:
        result = asyncio.run(mixed(port, texts, args))
    print(f"Mixed load, {args.workers} workers, concurrency {args.concurrency}: {result['requests']:,} requests "
          f"in {result['seconds']} s = {result['throughput_rps']:,} req/s ({result['questions_per_s']:,} "
          f"questions/s), errors {result['errors']}")
    print(f"  answers: {dict(User.statuses)}")
    print(line("GET /intent", result["get"]))
    print(line(f"POST /intent ({args.batch_size} questions)", result["post"]))
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    report: dict[str, object] = {"questions": source, "settings": settings, "mixed": result}
    if args.starvation_workers:
        report["starvation"] = starved = on_server(args.starvation_workers, starvation, texts)
        print(f"Starvation, {args.starvation_workers} worker(s):")
        print(line("GET idle", starved["idle_get"]))
        print(line(f"GET, {STARVING_CLIENTS} clients posting {STARVING_BATCH}s", starved["get_with_4_batch_posters"]))
        print(f"  ratio busy/idle: p50 x{starved['ratio_p50']}, p99 x{starved['ratio_p99']}")
        print(line("GET during a 1,000 x 5,000-char batch", starved["get_during_1000x5000_batch"]))
        print(f"  that batch: {starved['giant'].get('batch_ms')} ms, ok {starved['giant'].get('batch_ok')}")
    if args.hostile_workers:
        report["hostile"] = attacked = on_server(args.hostile_workers, hostile, texts)
        print(f"Hostile, {args.hostile_workers} worker(s), {HOSTILE_CLIENTS} clients sending 5,000-char floods by GET:")
        print(line("ordinary GET", attacked["get_with_4_flooders"]))
        print(line("flood GET", attacked["floods"]))
        print(f"  ordinary GET p99 {attacked['get_with_4_flooders']['p99_ms']:.1f} ms "
              f"({'within' if attacked['met'] else 'OVER'} the {HOSTILE_P99_MS} ms target)")
    record(started, card, report, args.output)
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
