"""Where an Optuna study lives: the storage a ``storage`` parameter names, its URL shown without a password, and
the Optuna storage object for it (in memory, a SQLite file under ``paths.TUNING_DIR``, or any database URL).

A URL's password never reaches a report or the process list: ``redact`` hides it, and worker processes get the
URL through the environment (``intent_lib.tuning_workers``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna

from intent_lib.paths import OPTUNA_DB, OPTUNA_WORKERS_DB


def resolve_storage(storage: str, workers: int, tuning_dir: Path) -> tuple[str | None, str]:
    """The storage URL (None: in memory) for a ``storage`` parameter, and a sentence saying what was chosen.

    ``memory``, ``sqlite`` (``paths.OPTUNA_DB`` in the tuning folder) or any URL Optuna accepts. Several workers
    cannot share memory: with ``workers > 1`` an in-memory request becomes a fresh SQLite file,
    ``paths.OPTUNA_WORKERS_DB``.
    """
    if storage in ("", "memory", None):
        if workers <= 1:
            return None, "Storage: in memory (the study ends with this notebook)."
        path = tuning_dir / OPTUNA_WORKERS_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}", (f"Storage: {workers} workers cannot share memory, so this run uses a fresh "
                                     f"SQLite file, `{path.name}` in `{tuning_dir.name}/` (replaced at each run).")
    if storage == "sqlite":
        path = tuning_dir / OPTUNA_DB
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}", f"Storage: SQLite file `{path.name}` in `{tuning_dir.name}/` (kept between runs)."
    return storage, f"Storage: `{redact(storage)}`."


def redact(url: str | None) -> str:
    """A storage URL without its password."""
    if url is None:
        return "memory"
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy can parse: say nothing of it
        return "<unparsed storage URL>"


def database_url(url: str) -> str:
    """``url`` with a PostgreSQL driver SQLAlchemy can load: a bare ``postgresql://`` means psycopg (3) to
    SQLAlchemy 2.1, while the project installs psycopg2; other URLs are returned as they are."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        if importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The Optuna storage of ``url`` (None: Optuna's in-memory storage)."""
    if url is None:
        return None
    url = database_url(url)
    # SQLite locks the whole file while one worker writes: let the other wait instead of failing.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
