"""Which dataset a run uses, and loading it strictly: the real CSV files, or the demo data shipped in the package.

One rule (``prepare_dataset``): decrypt ``DATA_ARCHIVE`` into data/ when it exists (not again when data/ holds
what it decrypted last time, by hash); then data/ when it holds the labelled CSV files; else the demo data. Files follow the challenge's layout (see ``intent_lib.paths``).
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from intent_lib import archive
from intent_lib.files import sha256_of, write_json
from intent_lib.paths import (ARCHIVE_ORIGIN, DATA_DIR, DATASET_FILES, DEFAULT_ARCHIVE, LABELLED_FILES,
                              TRAIN_INPUTS, TRAIN_LABELS, project_root)

log = logging.getLogger(__name__)

DEMO_DIR = resources.files("intent_lib") / "resources" / "demo"
DEMO_BANNER = (
    "DEMO DATA: no dataset archive was found, so this run uses the small synthetic demo dataset shipped "
    "with intent_lib. Its figures say nothing about the real task. Set DATA_ARCHIVE and POSOS_PASSPHRASE "
    "(or POSOS_PASSPHRASE_FILE) to train on the real data."
)


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the row."""


@dataclass(frozen=True)
class DatasetInfo:
    """Where the data came from and a hash of its contents."""

    source: str  # "archive", "csv" or "demo"
    location: str  # the archive by its hash, or the folder of the CSV files: never where a run mounted it
    sha256: str  # of the CSV files
    archive_sha256: str | None = None  # of the archive they were decrypted from

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"


def _read_csv(path: Path | resources.abc.Traversable, columns: tuple[str, str]) -> pd.DataFrame:
    """Read a two-column CSV strictly: UTF-8, the expected header, integer and unique IDs."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (bad byte at line {line}).") from exc
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a valid CSV ({exc}).") from exc
    if tuple(df.columns) != columns:
        raise DataError(f"{path}: expected header {','.join(columns)}, found {','.join(map(str, df.columns))}.")
    df["ID"] = _integer_column(df["ID"], path, "ID")
    duplicated = df["ID"][df["ID"].duplicated()]
    if not duplicated.empty:
        row = int(duplicated.index[0]) + 1
        raise DataError(f"{path}: row {row}: ID {duplicated.iloc[0]} appears more than once.")
    return df


def _integer_column(values: pd.Series, path: object, name: str) -> pd.Series:
    """The column as int64, or a DataError naming the first row that is not an integer."""
    parsed = pd.to_numeric(values.str.strip(), errors="coerce")
    bad = parsed.isna() | (parsed % 1 != 0)
    if bad.any():
        row = int(bad.idxmax()) + 1
        raise DataError(f"{path}: row {row}: {name} {values[bad.idxmax()]!r} is not an integer.")
    return parsed.astype("int64")


def load_questions(path: Path | resources.abc.Traversable) -> pd.DataFrame:
    """``ID,question`` rows; a missing question is read as the empty string."""
    return _read_csv(path, ("ID", "question"))


def load_labeled(inputs: Path | resources.abc.Traversable, outputs: Path | resources.abc.Traversable) -> pd.DataFrame:
    """Questions joined with their labels: columns ID, question, intention (int)."""
    questions = load_questions(inputs)
    labels = _read_csv(outputs, ("ID", "intention"))
    labels["intention"] = _integer_column(labels["intention"], outputs, "intention")
    if (labels["intention"] < 0).any():
        row = int((labels["intention"] < 0).idxmax()) + 1
        raise DataError(f"{outputs}: row {row}: intention must be a non-negative integer.")
    unlabeled = ~questions["ID"].isin(labels["ID"])
    if unlabeled.any():
        row = int(unlabeled.idxmax()) + 1
        raise DataError(f"{inputs}: row {row}: ID {questions['ID'][unlabeled].iloc[0]} has no label in {outputs}.")
    orphan = ~labels["ID"].isin(questions["ID"])
    if orphan.any():
        row = int(orphan.idxmax()) + 1
        raise DataError(f"{outputs}: row {row}: ID {labels['ID'][orphan].iloc[0]} has no question in {inputs}.")
    return questions.merge(labels, on="ID", how="left", validate="one_to_one")


def load_labelled_folder(folder: Path | resources.abc.Traversable) -> pd.DataFrame:
    """The labelled questions of a dataset folder (``locate_dataset``'s first answer)."""
    return load_labeled(folder / TRAIN_INPUTS, folder / TRAIN_LABELS)


def record_archive_origin(data_dir: Path, archive: Path) -> None:
    """Note which archive the CSV files of ``data_dir`` came from (read back by ``locate_dataset``), and each
    decrypted file's hash (read back by ``already_decrypted``)."""
    write_json({"archive_sha256": sha256_of(archive),
                "csv_sha256": sha256_of(*(data_dir / n for n in LABELLED_FILES)),
                "files": {name: sha256_of(data_dir / name) for name in DATASET_FILES if (data_dir / name).is_file()}},
               data_dir / ARCHIVE_ORIGIN)


def _archive_origin(data_dir: Path) -> dict[str, Any]:
    """What ``record_archive_origin`` noted in ``data_dir`` (empty when nothing was decrypted there)."""
    origin_file = data_dir / ARCHIVE_ORIGIN
    return json.loads(origin_file.read_text(encoding="utf-8")) if origin_file.is_file() else {}


def already_decrypted(data_dir: Path, archive: Path) -> bool:
    """Whether ``data_dir`` holds what ``archive`` decrypts to: the archive's hash is the one recorded, and every
    decrypted file is still there with its recorded hash."""
    origin = _archive_origin(data_dir)
    files = origin.get("files") or {}
    return (bool(files) and origin.get("archive_sha256") == sha256_of(archive)
            and all((data_dir / name).is_file() and sha256_of(data_dir / name) == sha for name, sha in files.items()))


def locate_dataset(data_dir: Path) -> tuple[Path | resources.abc.Traversable, DatasetInfo]:
    """The folder holding the CSV files: ``data_dir`` when it has them, else the demo data; and their origin
    (``archive`` when decrypted from one and unchanged since, else ``csv``)."""
    if all((data_dir / name).is_file() for name in LABELLED_FILES):
        sha = sha256_of(*(data_dir / n for n in LABELLED_FILES))
        origin = _archive_origin(data_dir)
        if origin.get("csv_sha256") == sha:
            archive_sha = origin["archive_sha256"]
            return data_dir, DatasetInfo("archive", f"archive sha256 {archive_sha[:12]}", sha, archive_sha)
        return data_dir, DatasetInfo("csv", _shown_path(data_dir), sha)
    return DEMO_DIR, DatasetInfo("demo", "intent_lib/resources/demo", sha256_of(*(DEMO_DIR / n for n in LABELLED_FILES)))


def _shown_path(folder: Path) -> str:
    """A folder as the reports and the model card show it: relative to the project, never a home path."""
    try:
        return str(folder.resolve().relative_to(project_root()))
    except ValueError:
        return folder.name


def decrypt_configured_archive(root: Path, data_dir: Path = DATA_DIR) -> bool:
    """Decrypt ``DATA_ARCHIVE`` (default: ``paths.DEFAULT_ARCHIVE`` at the root) into ``data_dir`` when it exists;
    return whether it did. A ``DATA_ARCHIVE`` that names no file is an error."""
    configured = os.environ.get("DATA_ARCHIVE")
    archive_path = Path(configured or DEFAULT_ARCHIVE)
    archive_path = archive_path if archive_path.is_absolute() else root / archive_path
    if not archive_path.is_file():
        if configured and Path(configured) != DEFAULT_ARCHIVE:
            raise archive.ArchiveError(f"DATA_ARCHIVE={configured} does not exist.")
        return False
    folder = root / data_dir
    if already_decrypted(folder, archive_path):
        log.info("%s/ holds what %s decrypts to (same sha256): not decrypted again", data_dir, archive_path.name)
        return True
    files = archive.decrypt_archive(archive_path, folder, archive.read_passphrase())
    record_archive_origin(folder, archive_path)
    log.info("decrypted %s into %s", archive_path.name, ", ".join(f"{data_dir}/{f.name}" for f in files))
    return True


def prepare_dataset(root: Path, data_dir: Path = DATA_DIR) -> DatasetInfo:
    """The one rule for which data a run uses: the configured archive decrypted into ``data_dir`` when there is
    one, then ``locate_dataset`` (data/ when it holds the labelled files, else the demo data)."""
    decrypt_configured_archive(root, data_dir)
    return locate_dataset(root / data_dir)[1]
