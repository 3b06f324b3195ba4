"""Load, validate and split the dataset: the real CSV files, or the demo data shipped in the package.

Files follow the challenge's layout: ``input_train.csv`` (ID,question), ``output_train.csv``
(ID,intention), ``input_test.csv`` (ID,question).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from intent_lib.paths import project_root

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
    location: str
    sha256: str

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


def sha256_of(*paths: Path | resources.abc.Traversable) -> str:
    """One sha256 over the bytes of several files, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


TRAIN_FILES = ("input_train.csv", "output_train.csv")
ORIGIN_FILE = "archive.json"  # written beside the CSV files by the decryption step


def record_archive_origin(data_dir: Path, archive: Path) -> None:
    """Note which archive the CSV files of ``data_dir`` came from (read back by ``locate_dataset``)."""
    origin = {"archive": archive.name, "archive_sha256": sha256_of(archive),
              "csv_sha256": sha256_of(*(data_dir / n for n in TRAIN_FILES))}
    (data_dir / ORIGIN_FILE).write_text(json.dumps(origin, indent=2), encoding="utf-8")


def locate_dataset(data_dir: Path) -> tuple[Path | resources.abc.Traversable, DatasetInfo]:
    """The folder holding the CSV files: ``data_dir`` when it has them, else the demo data; and their origin
    (``archive`` when decrypted from one and unchanged since, else ``csv``)."""
    if all((data_dir / name).is_file() for name in TRAIN_FILES):
        sha = sha256_of(*(data_dir / n for n in TRAIN_FILES))
        origin_file = data_dir / ORIGIN_FILE
        origin = json.loads(origin_file.read_text(encoding="utf-8")) if origin_file.is_file() else {}
        if origin.get("csv_sha256") == sha:
            return data_dir, DatasetInfo("archive", f"{origin['archive']} (sha256 {origin['archive_sha256'][:12]}…)", sha)
        return data_dir, DatasetInfo("csv", _shown_path(data_dir), sha)
    log.warning(DEMO_BANNER)
    return DEMO_DIR, DatasetInfo("demo", "intent_lib/resources/demo", sha256_of(*(DEMO_DIR / n for n in TRAIN_FILES)))


def _shown_path(folder: Path) -> str:
    """A folder as the reports and the model card show it: relative to the project, never a home path."""
    try:
        return str(folder.resolve().relative_to(project_root()))
    except ValueError:
        return folder.name


def stratified_split(df: pd.DataFrame, val_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation frames, stratified by intention; intents with one example stay in train."""
    from sklearn.model_selection import train_test_split  # here: the API client imports this module, not sklearn

    if not 0 < val_size < 1:
        raise ValueError(f"val_size must be between 0 and 1, got {val_size}.")
    counts = df["intention"].map(df["intention"].value_counts())
    single = df[counts < 2]
    rest = df[counts >= 2]
    train, val = train_test_split(rest, test_size=val_size, random_state=seed, stratify=rest["intention"])
    train = pd.concat([train, single]).sort_values("ID")
    return train.reset_index(drop=True), val.sort_values("ID").reset_index(drop=True)


@dataclass(frozen=True)
class Split:
    """The files written by the split step, and what produced them."""

    train_path: str
    val_path: str
    seed: int
    val_size: float
    dataset: DatasetInfo
    train_sha256: str
    val_sha256: str

    @classmethod
    def read(cls, folder: Path) -> "Split":
        meta = json.loads((folder / "split.json").read_text(encoding="utf-8"))
        return cls(**{**meta, "dataset": DatasetInfo(**meta["dataset"])})

    def frames(self, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The train and validation frames (ID, question, intention)."""
        read = lambda p: pd.read_csv(root / p, dtype={"question": str}, keep_default_na=False)  # noqa: E731
        return read(self.train_path), read(self.val_path)


def write_split(
    train: pd.DataFrame, val: pd.DataFrame, folder: Path, root: Path, seed: int, val_size: float, dataset: DatasetInfo
) -> Split:
    """Write train.csv, val.csv and split.json under ``folder``; return their description."""
    folder.mkdir(parents=True, exist_ok=True)
    train_path, val_path = folder / "train.csv", folder / "val.csv"
    train.to_csv(train_path, index=False)
    val.to_csv(val_path, index=False)
    split = Split(
        train_path=str(train_path.relative_to(root)),
        val_path=str(val_path.relative_to(root)),
        seed=seed,
        val_size=val_size,
        dataset=dataset,
        train_sha256=sha256_of(train_path),
        val_sha256=sha256_of(val_path),
    )
    (folder / "split.json").write_text(json.dumps(asdict(split), indent=2), encoding="utf-8")
    return split
