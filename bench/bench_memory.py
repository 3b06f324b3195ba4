"""Memory per worker as its embedding cache fills, then past full (the bound holds).

    python bench/bench_memory.py [--entries 100000] [--workers 1] [--overfill 1.25] [--batch-size 100]
                                 [--max-seconds 3600]

Starts ``python -m api.serve`` on loopback (the model at ``MODEL_PATH``) with ``EMBEDDING_CACHE_ENTRIES`` set to
``--entries``, and sends it questions never seen before by POST batches, ``--overfill`` times the cache's bound
per worker: the first ``WORDS`` words of a test question and a new number (a new sentence embedding, and a new
word in spaCy's vocabulary; short, so that 100,000 of them are encoded in minutes: an entry's size does not depend
on its text's length). At every tenth of the way it reads ``/metrics``: each process's resident memory and each worker's
cache entries. Prints the table and the memory per cached entry, writes ``bench/results/bench_memory.json`` (with
the command, commit, date, load and the model's dataset: what `make results` quotes).
Resident memory on a shared machine is an upper bound of what the server needs (freed memory is not always
given back to the system).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import httpx
from bench_api import local_card, questions, record  # this script's folder is on sys.path

from intent_lib.encoder import MEMORY_ENTRIES
from intent_lib.paths import BENCH_MEMORY_FILE, BENCH_RESULTS_DIR, project_root
from intent_lib.results import bench_command, measurement
from posos_client.server import api_server, free_port

RESULTS = project_root() / BENCH_RESULTS_DIR / BENCH_MEMORY_FILE
CLIENTS = 2  # batches in flight: one predicted while the next waits
CHECKPOINTS = 10
WORDS = 6
MB = 1024 * 1024


def snapshot(http: httpx.Client, url: str) -> dict[str, object]:
    """Resident memory of the supervisor and of each worker (MB), and each worker's cached embeddings."""
    rss: dict[str, float] = {}
    entries: dict[str, float] = {}
    for line in http.get(f"{url}/metrics").text.splitlines():
        if line.startswith("posos_process_resident_memory_bytes{"):
            labels, value = line.rsplit(" ", 1)
            role = "supervisor" if 'role="supervisor"' in labels else labels.split('pid="')[1].split('"')[0]
            rss[role] = round(float(value) / MB, 1)
        elif line.startswith("posos_embedding_cache_entries{"):
            labels, value = line.rsplit(" ", 1)
            entries[labels.split('pid="')[1].split('"')[0]] = float(value)
    workers = sorted(pid for pid in rss if pid != "supervisor")
    return {"supervisor_mb": rss.get("supervisor"), "workers_mb": [rss[pid] for pid in workers],
            "entries": [int(entries.get(pid, 0)) for pid in workers]}


async def send(url: str, texts: list[str], start: int, count: int, batch_size: int) -> None:
    """``count`` new questions from number ``start`` on, ``CLIENTS`` batches in flight."""
    numbers = iter(range(start, start + count, batch_size))

    async def client() -> None:
        async with httpx.AsyncClient(timeout=600) as http:
            for first in numbers:
                batch = [f"{texts[i % len(texts)]} (n° {i})" for i in range(first, min(first + batch_size,
                                                                                     start + count))]
                response = await http.post(f"{url}/intent", json={"queries": batch})
                response.raise_for_status()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=MEMORY_ENTRIES, help="EMBEDDING_CACHE_ENTRIES")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overfill", type=float, default=1.25, help="questions sent per worker / --entries")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=3600)
    args = parser.parse_args(argv)
    texts, source = questions()
    texts = [" ".join(text.split()[:WORDS]) for text in texts]
    step = max(args.batch_size, int(args.entries * args.overfill * args.workers) // CHECKPOINTS)
    total = step * CHECKPOINTS
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rows = []
    card, measured = local_card(), measurement(bench_command(argv))
    started = time.monotonic()
    with api_server("127.0.0.1", port, 300, workers=args.workers,
                    env={"EMBEDDING_CACHE_ENTRIES": str(args.entries)}), httpx.Client(timeout=60) as http:
        print(f"{'sent':>9} {'cached per worker':>20} {'worker MB':>16} {'supervisor MB':>14}  ({source}, load "
              f"{os.getloadavg()[0]:.1f})")
        for sent in range(0, total + 1, step):
            if sent:
                asyncio.run(send(url, texts, sent - step, step, args.batch_size))
            rows.append({"sent": sent, **snapshot(http, url)})
            row = rows[-1]
            print(f"{row['sent']:>9,} {str(row['entries']):>20} {str(row['workers_mb']):>16} "
                  f"{row['supervisor_mb']:>14}", flush=True)
            if time.monotonic() - started > args.max_seconds:
                print(f"stopped after {args.max_seconds:.0f} s", file=sys.stderr)
                break
    full = next((r for r in rows if min(r["entries"]) >= args.entries), None)
    per_entry = None
    if full is not None and args.entries:
        grown = [f - s for f, s in zip(full["workers_mb"], rows[1]["workers_mb"])]
        cached = [f - s for f, s in zip(full["entries"], rows[1]["entries"])]
        per_entry = round(sum(grown) * MB / max(sum(cached), 1) / 1024, 2)
        print(f"full cache ({args.entries:,} entries): worker RSS {full['workers_mb']} MB; at the end "
              f"{rows[-1]['workers_mb']} MB; ~{per_entry} KB per cached entry (between the first checkpoint and full)")
    record(measured, card, {"entries": args.entries, "workers": args.workers, "batch_size": args.batch_size,
                            "questions": source, "kb_per_entry": per_entry, "rows": rows, "full": full}, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
