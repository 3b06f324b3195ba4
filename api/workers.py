"""Who is serving: the supervisor records its live worker processes and the model version in service; ``/metrics``
and ``/version`` read that record, so they never report a dead worker or a version no longer served.

The record is one JSON file in the server's runtime folder (``POSOS_RUNTIME_DIR``, set by ``python -m api.serve``
for its workers), replaced atomically whenever a worker starts or dies or the served version switches.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

RUNTIME_DIR_ENV = "POSOS_RUNTIME_DIR"
LIVE_FILE = "live_workers.json"


@dataclass(frozen=True)
class LiveWorkers:
    """The supervisor's live workers (their pids) and the model version they all serve."""

    pids: tuple[int, ...]
    model_version: str | None


def runtime_dir() -> Path | None:
    """The server's runtime folder, or None outside a server started by ``python -m api.serve``."""
    folder = os.environ.get(RUNTIME_DIR_ENV)
    return Path(folder) if folder else None


def write_live(workers: LiveWorkers, folder: Path) -> None:
    """Replace the record atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{LIVE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**asdict(workers), "pids": list(workers.pids)}), encoding="utf-8")
    tmp.replace(folder / LIVE_FILE)


def read_live(folder: Path | None = None) -> LiveWorkers | None:
    """The record in ``folder`` (default: ``runtime_dir()``), or None when there is none yet."""
    folder = folder or runtime_dir()
    if folder is None:
        return None
    try:
        content = json.loads((folder / LIVE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return LiveWorkers(pids=tuple(int(pid) for pid in content.get("pids", ())),
                       model_version=content.get("model_version"))
