"""The model registry: each new model of a train run as a version of ``posos-intent``, the ``champion`` alias, and
a registered version fetched for the API.

- ``register``, after a tracked train run has logged its artefacts: a new version made from the run's ``model``
  artefacts with ``MlflowClient.create_model_version``, only when no version holds a model of the same sha256
  (``mlflow.register_model`` refuses plain artefacts, and leaves an empty registered model behind).
- ``promote``: the alias ``champion`` on a version (``make promote VERSION=N``).
- ``fetch``: a ``models:/posos-intent/N`` or ``models:/posos-intent@alias`` URI resolved, that version's model and
  card downloaded into ``models/registry/<name>/<version>/`` and checked (card, sha256 against the registered
  one, library versions: ``artefacts.check_file``), with a record of which version it is beside them; and, for a
  server, its link (``paths.registry_link``) pointed at that folder. The API reads these files and never imports
  MLflow.

Every failure is a one-line ``TrackingError``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intent_lib.artefacts import ModelIntegrityError, check_file
from intent_lib.files import write_json
from intent_lib.paths import MODEL_FILE, REGISTRY_RECORD_FILE, registry_link, registry_model_path
from intent_lib.tracking import (EXPERIMENT, MODEL_DIR, TrackedRun, TrackingError, connect, store_error,
                                 tracking_uri)

if TYPE_CHECKING:  # mlflow itself is imported by tracking alone (tests/test_layout.py)
    from intent_lib.tracking import MlflowClient

log = logging.getLogger(__name__)

REGISTERED_MODEL = EXPERIMENT
CHAMPION = "champion"
SHA_TAG = "model_sha256"  # on each version: the sha256 of its pickle
VERSION_TAG = "registered_version"  # on each train run: the version holding its model
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}  # MLflow's codes for an unknown version/alias


@dataclass(frozen=True)
class Record:
    """Which registered version a fetched model is (``REGISTRY_RECORD_FILE``, reported by the API's ``/version``)."""

    name: str
    version: str
    run_id: str

    @classmethod
    def of(cls, version: Any) -> "Record":
        return cls(version.name, str(version.version), version.run_id or "")


def register(tracked: TrackedRun) -> str | None:
    """Register the run's model unless a version already holds one with its sha256; the console line (None when
    the run logged no model)."""
    client = tracked.client
    sha = client.get_run(tracked.run_id).data.tags.get(SHA_TAG)
    if not sha:
        return None
    try:
        same = client.search_model_versions(f"name = '{REGISTERED_MODEL}' and tags.{SHA_TAG} = '{sha}'")
        if same:
            version, line = min(int(v.version) for v in same), "model unchanged: already {name} version {version}"
        else:
            if not client.search_registered_models(filter_string=f"name = '{REGISTERED_MODEL}'"):
                client.create_registered_model(REGISTERED_MODEL)
            source = f"{client.get_run(tracked.run_id).info.artifact_uri}/{MODEL_DIR}"
            version = int(client.create_model_version(REGISTERED_MODEL, source, run_id=tracked.run_id,
                                                      tags={SHA_TAG: sha}).version)
            line = "registered as {name} version {version} (make promote VERSION={version} makes it the champion)"
        client.set_tag(tracked.run_id, VERSION_TAG, str(version))
    except Exception as exc:  # noqa: BLE001 - the store failed between two calls
        raise store_error(tracking_uri(tracked.root), time.perf_counter(), exc) from exc
    return line.format(name=REGISTERED_MODEL, version=version)


def _versions_known(client: "MlflowClient", name: str) -> str:
    """``versions 1, 2, 3; champion = 2``: what the registry holds, for an error message."""
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    if not versions:
        return f"no version of {name} is registered yet: make train registers one"
    aliases = [f"{alias} = {number}" for alias, number in client.get_registered_model(name).aliases.items()]
    return f"{name} has versions {', '.join(str(v.version) for v in versions)}" + (
        f"; {', '.join(aliases)}" if aliases else "; no alias")


def _call(root: Path, client: "MlflowClient", what: str, call: Any, *args: Any) -> Any:
    """``call(*args)``; an unknown version or alias, or a store that fails, is a one-line ``TrackingError``."""
    started = time.perf_counter()
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001 - MlflowException for an unknown name, anything else from the store
        if getattr(exc, "error_code", None) not in _NOT_FOUND:
            raise store_error(tracking_uri(root), started, exc, train=False) from exc
        raise TrackingError(f"{what}: no such version in the registry ({_versions_known(client, args[0])})") \
            from None


def resolve(root: Path, uri: str, client: "MlflowClient | None" = None) -> Any:
    """The registered version ``uri`` names (``models:/posos-intent/3``, ``models:/posos-intent@champion``)."""
    match = _URI.match(uri.strip())
    if match is None:
        raise TrackingError(f"MODEL={uri}: expected models:/{REGISTERED_MODEL}/<version> or "
                            f"models:/{REGISTERED_MODEL}@<alias>, e.g. models:/{REGISTERED_MODEL}@{CHAMPION}")
    client = client or connect(root, train=False)
    name, number, alias = match["name"], match["version"], match["alias"]
    if number:
        return _call(root, client, uri, client.get_model_version, name, number)
    return _call(root, client, uri, client.get_model_version_by_alias, name, alias)


def promote(root: Path, version: str) -> str:
    """Give ``version`` the alias ``champion``; the console line."""
    number, what = version.strip(), f"VERSION={version}"
    if not number.isdigit():
        raise TrackingError(f"{what}: a version number is expected, e.g. make promote VERSION=1")
    client = connect(root, train=False)
    _call(root, client, what, client.get_model_version, REGISTERED_MODEL, number)
    _call(root, client, what, client.set_registered_model_alias, REGISTERED_MODEL, CHAMPION, number)
    return f"{REGISTERED_MODEL} version {number} is the {CHAMPION} (models:/{REGISTERED_MODEL}@{CHAMPION})"


def _checked(folder: Path, expected_sha: str | None) -> bool:
    """Whether ``folder`` holds a model that passes the file checks and has the registered sha256, and its record."""
    if not (folder / REGISTRY_RECORD_FILE).is_file():
        return False
    try:
        card = check_file(folder / MODEL_FILE)
    except ModelIntegrityError:
        return False
    return expected_sha is None or card.get("model_sha256") == expected_sha


def fetch(root: Path, uri: str) -> Path:
    """The pickle of the version ``uri`` names, in ``models/registry/<name>/<version>/`` (downloaded unless an
    intact copy is there), checked against its card and the registered sha256."""
    client = connect(root, train=False)
    version = resolve(root, uri, client)
    record = Record.of(version)
    target = (root / registry_model_path(record.name, record.version)).parent
    expected = version.tags.get(SHA_TAG)
    if not _checked(target, expected):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
        try:
            started = time.perf_counter()
            try:
                folder = Path(client.download_artifacts(record.run_id, MODEL_DIR, str(staging)))
            except Exception as exc:  # noqa: BLE001 - the store or its artefact folder failed
                raise store_error(tracking_uri(root), started, exc, train=False) from exc
            try:
                card = check_file(folder / MODEL_FILE)
            except ModelIntegrityError as exc:
                raise TrackingError(f"{uri} (version {record.version}) cannot be served: {exc}") from None
            if expected and card.get("model_sha256") != expected:
                raise TrackingError(f"{uri} (version {record.version}): the downloaded model's sha256 is not the "
                                    "registered one")
            write_json(asdict(record), folder / REGISTRY_RECORD_FILE)
            shutil.rmtree(target, ignore_errors=True)
            folder.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("%s is %s version %s, in %s", uri, record.name, record.version, target)
    return target / MODEL_FILE


def link(root: Path, model_path: Path, port: int) -> Path:
    """Point the link of the server on ``port`` at ``model_path``'s folder (one atomic rename); the pickle path
    through the link, which that server loads on start and on reload."""
    where = root / registry_link(port)
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = where.with_name(f".{where.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(model_path.parent, where.parent))
    tmp.replace(where)
    return where / MODEL_FILE

