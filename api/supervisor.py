"""The supervisor behind ``python -m api.serve``: worker processes on one shared socket, model rollouts, drain.

- It starts ``count`` workers (api/worker.py), even one, on the socket it bound, all with the private copy of
  the version in service (api/versions.py), and points at that version once every worker serves it.
- A worker that dies is replaced, with the version in service, after a pause that doubles while replacements
  die before they are ready (RESTART_MIN_SECONDS to RESTART_MAX_SECONDS). Only at start-up does a dying worker
  stop the server (exit STARTUP_FAILURE).
- SIGHUP reloads ``MODEL_PATH``: its copy is checked, every worker loads it beside the current one, then the
  pointer moves for all of them at once; the old version is freed once its requests are answered and a line
  logs the switch. A version refused by the checks, by one worker or not loaded within RELOAD_TIMEOUT_SECONDS
  is dropped everywhere, with one line saying why: the version in service stays.
- SIGTERM is passed to the workers, which drain (api/worker.py); SIGINT too, without the drain. It exits 0
  once they have stopped, removing its state folder.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import multiprocess

from api.settings import (GRACEFUL_SHUTDOWN_SECONDS, RELOAD_TIMEOUT_SECONDS, RESTART_MAX_SECONDS,
                          RESTART_MIN_SECONDS, STARTUP_FAILURE, Settings)
from api.versions import InService, Version, discard, prepare
from intent_lib.artefacts import ModelIntegrityError
from intent_lib.paths import SUPERVISOR_PID_FILE, WORKER_PIDS_FILE

log = logging.getLogger("api")
TICK_SECONDS = 0.5


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    reports: int  # the read end of its report pipe
    loaded: set[str] = field(default_factory=set)
    ready: bool = False
    buffer: bytes = b""

    def send(self, line: str) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it is dying: reaped on the next tick


@dataclass
class Reload:
    version: Version
    deadline: float


class Supervisor:
    def __init__(self, sock: socket.socket, count: int, settings: Settings, state_dir: Path,
                 model_path: Path) -> None:
        self.sock = sock
        self.count = count
        self.settings = settings
        self.state_dir = state_dir
        self.model_path = model_path
        self.pointer = InService(state_dir)
        self.workers: list[Worker] = []
        self.in_service: Version | None = None
        self.serving = False  # every first worker was ready once
        self.reload: Reload | None = None
        self.old: str | None = None  # the version being freed after a switch
        self.stop_deadline: float | None = None
        self.restart_at: float | None = None
        self.pause = RESTART_MIN_SECONDS
        self.selector = selectors.DefaultSelector()
        self.signals: list[int] = []

    # ------------------------------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Serve until stopped; the exit code. ``ModelIntegrityError`` when the model is refused at start."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        code = 0
        try:
            self.pointer.clear()
            (self.state_dir / SUPERVISOR_PID_FILE).write_text(str(os.getpid()))
            self.in_service = prepare(self.model_path, self.state_dir)
            wake_read, wake_write = os.pipe()
            os.set_blocking(wake_write, False)
            signal.set_wakeup_fd(wake_write)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, lambda signum, _: self.signals.append(signum))
            self.selector.register(wake_read, selectors.EVENT_READ)
            while self.stop_deadline is None or self.workers:
                self._spawn_missing()
                for key, _ in self.selector.select(TICK_SECONDS):
                    if key.fd == wake_read:
                        os.read(wake_read, 512)
                    else:
                        self._read_reports(key.data)
                while self.signals:
                    self._on_signal(self.signals.pop(0))
                if self._reap() and not self.serving and self.stop_deadline is None:
                    log.error("a worker stopped before serving: the server cannot start")
                    code = STARTUP_FAILURE
                    self._stop(signal.SIGTERM)
                self._progress()
        finally:
            signal.set_wakeup_fd(-1)
            for worker in self.workers:
                worker.process.kill()
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return code

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP and self.stop_deadline is None:
            self._start_reload()
        elif self.stop_deadline is None:
            self._stop(signum)

    def _stop(self, signum: int) -> None:
        drain = self.settings.drain_seconds if signum == signal.SIGTERM else 0
        self.stop_deadline = time.monotonic() + drain + GRACEFUL_SHUTDOWN_SECONDS + 5
        self.reload = None
        for worker in self.workers:
            worker.process.send_signal(signum)

    # ------------------------------------------------------------------------------------------ workers

    def _spawn_missing(self) -> None:
        if self.stop_deadline is not None or len(self.workers) >= self.count:
            return
        if self.restart_at is not None and time.monotonic() < self.restart_at:
            return
        assert self.in_service is not None
        while len(self.workers) < self.count:
            self.workers.append(self._spawn(self.in_service))
        self._write_pids()
        self.restart_at = None

    def _spawn(self, version: Version) -> Worker:
        reports, report_write = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "api.worker", str(self.sock.fileno()), str(report_write), str(self.state_dir),
             str(version.model_path)],
            stdin=subprocess.PIPE, pass_fds=(self.sock.fileno(), report_write), start_new_session=True)
        os.close(report_write)
        worker = Worker(process, reports)
        self.selector.register(reports, selectors.EVENT_READ, worker)
        return worker

    def _reap(self) -> bool:
        """Forget the workers that died (their live metrics with them); whether one did."""
        dead = [w for w in self.workers if w.process.poll() is not None]
        for worker in dead:
            self.workers.remove(worker)
            self.selector.unregister(worker.reports)
            os.close(worker.reports)
            if worker.process.stdin is not None:
                worker.process.stdin.close()
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                multiprocess.mark_process_dead(worker.process.pid)
            if self.stop_deadline is None and self.serving:
                log.warning("worker %d exited with code %s: replacing it in %.1f s with version %s",
                            worker.process.pid, worker.process.returncode, self.pause,
                            self.in_service.sha12 if self.in_service else "-")
                self.restart_at = time.monotonic() + self.pause
                self.pause = min(2 * self.pause, RESTART_MAX_SECONDS) if not worker.ready else RESTART_MIN_SECONDS
        if dead:
            self._write_pids()
        return bool(dead)

    def _write_pids(self) -> None:
        path = self.state_dir / WORKER_PIDS_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(f"{w.process.pid}\n" for w in self.workers))
        tmp.replace(path)

    def _read_reports(self, worker: Worker) -> None:
        try:
            chunk = os.read(worker.reports, 65_536)
        except OSError:
            chunk = b""
        *lines, worker.buffer = (worker.buffer + chunk).split(b"\n")
        for line in lines:
            kind, _, argument = line.decode("utf-8", "replace").partition(" ")
            self._on_report(worker, kind, argument)

    def _on_report(self, worker: Worker, kind: str, argument: str) -> None:
        if kind == "ready":
            worker.ready = True
            worker.loaded.add(argument)
            if self.serving:
                log.info("worker %d serves version %s", worker.process.pid, argument)
            if self.reload is not None:
                worker.send(f"load {self.reload.version.model_path}")
        elif kind == "loaded":
            worker.loaded.add(argument)
            if self.reload is None or argument != self.reload.version.sha12:
                worker.send(f"drop {argument}")  # a reload refused meanwhile
        elif kind == "refused" and self.reload is not None:
            self._refuse(f"was refused by a worker: {argument}")
        elif kind == "dropped":
            worker.loaded.discard(argument)

    # ------------------------------------------------------------------------------------------ versions

    def _start_reload(self) -> None:
        assert self.in_service is not None
        if not self.serving or self.reload is not None or self.old is not None:
            log.warning("reload ignored: the server is %s", "starting" if not self.serving else "already switching")
            return
        try:
            version = prepare(self.model_path, self.state_dir)
        except ModelIntegrityError as exc:
            log.error("reload refused, version %s stays in service: %s", self.in_service.sha12, exc)
            return
        if version.sha12 == self.in_service.sha12:
            log.info("reload: version %s is already in service", version.sha12)
            return
        log.info("reload: every worker loads version %s beside %s", version.sha12, self.in_service.sha12)
        self.reload = Reload(version, time.monotonic() + RELOAD_TIMEOUT_SECONDS)
        for worker in self.workers:
            if worker.ready:
                worker.send(f"load {version.model_path}")

    def _refuse(self, why: str) -> None:
        assert self.reload is not None and self.in_service is not None
        name = self.reload.version.sha12
        log.error("reload refused, version %s stays in service: version %s %s", self.in_service.sha12, name, why)
        self.reload = None
        for worker in self.workers:
            if name in worker.loaded:
                worker.send(f"drop {name}")
        discard(self.state_dir, name)

    def _progress(self) -> None:
        """Start serving, switch, or finish a switch, when every worker is there; stop waiting past deadlines."""
        assert self.in_service is not None
        complete = len(self.workers) == self.count and all(w.ready for w in self.workers)
        if not self.serving and complete:
            self.pointer.write(self.in_service.sha12)
            self.serving = True
            log.info("model version %s in service on %d worker(s)", self.in_service.sha12, self.count)
        if self.reload is not None:
            new = self.reload.version
            if complete and all(new.sha12 in w.loaded for w in self.workers):
                self.old, self.in_service, self.reload = self.in_service.sha12, new, None
                self.pointer.write(new.sha12)  # every worker answers with it from now on
                for worker in self.workers:
                    worker.send(f"drop {self.old}")
            elif time.monotonic() > self.reload.deadline:
                self._refuse(f"was not loaded by every worker within {RELOAD_TIMEOUT_SECONDS} s")
        if self.old is not None and not any(self.old in w.loaded for w in self.workers):
            log.info("model version %s in service, replacing %s: no request is answered by %s any more",
                     self.in_service.sha12, self.old, self.old)
            discard(self.state_dir, self.old)
            self.old = None
        if self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
            for worker in self.workers:
                worker.process.kill()
