"""Metrics built at scrape time from what is live: the version in service and the server's processes.

``ModelInfo`` names only the version in service (``posos_model_info``), whatever earlier workers reported, and
gives its card's validation shares of unsure and out-of-scope answers (``posos_model_validation_share``), which
deploy/prometheus/alerts.yml compares the served shares with.
``ProcessMetrics`` reads ``/proc/<pid>`` of the supervisor and of each live worker (the pids the supervisor
lists in its state folder), one series per process labelled ``pid`` and ``role``: memory, CPU time, open files
and start time, which prometheus_client's own process collector cannot give in multiprocess mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.registry import Registry
from intent_lib.paths import SUPERVISOR_PID_FILE, WORKER_PIDS_FILE
from intent_lib.reasons import flag_shares

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ModelInfo(Collector):
    def __init__(self, card: dict[str, Any] | None) -> None:
        self.card = card or {}

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("posos_model_info", "The model version in service (value 1)", labels=["version"])
        if version := self.card.get("model_version"):
            info.add_metric([str(version)], 1)
        yield info
        shares = GaugeMetricFamily("posos_model_validation_share", "Share of the validation answers of the version "
                                   "in service flagged unsure, or out of scope (reason out_of_scope or no_content), "
                                   "from its card", labels=["flag"])
        if rates := (self.card.get("uncertainty") or {}).get("validation_rates"):
            for flag, share in flag_shares(rates).items():
                shares.add_metric([flag], share)
        yield shares


def pids(state_dir: Path) -> list[tuple[str, int]]:
    """(role, pid) of the supervisor and its live workers, as its state folder lists them."""
    found = []
    for role, name in (("supervisor", SUPERVISOR_PID_FILE), ("worker", WORKER_PIDS_FILE)):
        try:
            found += [(role, int(line)) for line in (state_dir / name).read_text().split() if line.isdigit()]
        except FileNotFoundError:
            continue
    return found


def _stat(pid: int) -> tuple[float, float, float, int] | None:
    """(CPU seconds, resident bytes, start time in seconds since boot, open files) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    # fields[0] is the state (field 3 of proc(5)): utime, stime are fields 14-15, starttime 22, rss 24.
    return ((int(fields[11]) + int(fields[12])) / _TICKS, int(fields[21]) * _PAGE, int(fields[19]) / _TICKS, files)


class ProcessMetrics(Collector):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def collect(self) -> Iterator[Metric]:
        labels = ["role", "pid"]
        cpu = CounterMetricFamily("posos_process_cpu_seconds", "CPU time of a server process", labels=labels)
        rss = GaugeMetricFamily("posos_process_resident_memory_bytes", "Resident memory of a server process",
                                labels=labels)
        start = GaugeMetricFamily("posos_process_start_seconds_since_boot", "When a server process started",
                                  labels=labels)
        files = GaugeMetricFamily("posos_process_open_fds", "Open file descriptors of a server process",
                                  labels=labels)
        for role, pid in pids(self.state_dir):
            if (stat := _stat(pid)) is None:
                continue
            for family, value in zip((cpu, rss, start, files), stat):
                family.add_metric([role, str(pid)], value)
        yield from (cpu, rss, start, files)


def live_collectors(registry: Registry) -> list[Collector]:
    """What ``/metrics`` collects at scrape time: the version in service and, under the supervisor, the processes."""
    slot = registry.current()
    live: list[Collector] = [ModelInfo(slot.service.card if slot else None)]
    if registry.pointer is not None:  # a supervised worker: the supervisor lists the live processes in its folder
        live.append(ProcessMetrics(registry.pointer.path.parent))
    return live
