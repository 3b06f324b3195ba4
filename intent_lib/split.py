"""The train/validation split (notebook 01_split): stratified, written to data/processed with its description."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from intent_lib.data import DatasetInfo
from intent_lib.files import read_json, sha256_of, write_json
from intent_lib.paths import SPLIT_META, TRAIN_SPLIT, VAL_SPLIT


def stratified_split(df: pd.DataFrame, val_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation frames, stratified by intention; intents with one example stay in train."""
    from sklearn.model_selection import train_test_split  # here: the runner reads splits without scikit-learn

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
        meta = read_json(folder / SPLIT_META)
        return cls(**{**meta, "dataset": DatasetInfo(**meta["dataset"])})

    def frames(self, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The train and validation frames (ID, question, intention)."""
        read = lambda p: pd.read_csv(root / p, dtype={"question": str}, keep_default_na=False)  # noqa: E731
        return read(self.train_path), read(self.val_path)


def write_split(
    train: pd.DataFrame, val: pd.DataFrame, folder: Path, root: Path, seed: int, val_size: float, dataset: DatasetInfo
) -> Split:
    """Write the train and validation CSV files and their description under ``folder``; return the description."""
    folder.mkdir(parents=True, exist_ok=True)
    train_path, val_path = folder / TRAIN_SPLIT, folder / VAL_SPLIT
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
    write_json(asdict(split), folder / SPLIT_META)
    return split
