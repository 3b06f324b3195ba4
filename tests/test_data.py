"""Loading, validating and splitting the CSV files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from intent_lib.data import DataError, load_labeled, load_questions, locate_dataset
from intent_lib.split import stratified_split


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    inputs = _write(tmp_path / "input_train.csv",
                    'ID,question\n0,"doliprane, enceinte ?"\n1,"une ligne\npuis une autre ""citée"""\n2,\n3,😀 <b>html</b>\n')
    outputs = _write(tmp_path / "output_train.csv", "ID,intention\n0,44\n1,28\n2,28\n3,1\n")
    return inputs, outputs


def test_valid_files_load_with_multiline_quotes_and_empty_questions(files: tuple[Path, Path]) -> None:
    df = load_labeled(*files)
    assert df["ID"].tolist() == [0, 1, 2, 3]
    assert df["question"].tolist() == ["doliprane, enceinte ?", 'une ligne\npuis une autre "citée"', "", "😀 <b>html</b>"]
    assert df["intention"].tolist() == [44, 28, 28, 1]


@pytest.mark.parametrize("content, message", [
    ("ID,question\n0,a\n0,b\n", "row 2: ID 0 appears more than once"),
    ("ID,question\n0,a\nx,b\n", "row 2: ID 'x' is not an integer"),
    ("id,text\n0,a\n", "expected header ID,question"),
    ("", "not a valid CSV"),
])
def test_malformed_question_files_name_file_and_row(tmp_path: Path, content: str, message: str) -> None:
    path = _write(tmp_path / "input_train.csv", content)
    with pytest.raises(DataError, match=message) as info:
        load_questions(path)
    assert "input_train.csv" in str(info.value)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "input_train.csv", b"ID,question\n0,ok\n1,caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8 .*line 3"):
        load_questions(path)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_questions(tmp_path / "absent.csv")


@pytest.mark.parametrize("labels, message", [
    ("ID,intention\n0,44\n1,28\n2,28\n", "ID 3 has no label"),
    ("ID,intention\n0,44\n1,28\n2,28\n3,1\n9,1\n", "ID 9 has no question"),
    ("ID,intention\n0,44\n1,2.5\n2,28\n3,1\n", "row 2: intention '2.5' is not an integer"),
    ("ID,intention\n0,44\n1,-3\n2,28\n3,1\n", "row 2: intention must be a non-negative integer"),
])
def test_label_problems_are_reported(files: tuple[Path, Path], labels: str, message: str) -> None:
    _write(files[1], labels)
    with pytest.raises(DataError, match=message):
        load_labeled(*files)


def test_split_is_stratified_deterministic_and_disjoint(demo_frame: pd.DataFrame) -> None:
    train, val = stratified_split(demo_frame, val_size=0.25, seed=7)
    again_train, again_val = stratified_split(demo_frame, val_size=0.25, seed=7)
    other_train, _ = stratified_split(demo_frame, val_size=0.25, seed=8)
    pd.testing.assert_frame_equal(train, again_train)
    pd.testing.assert_frame_equal(val, again_val)
    assert not train["ID"].equals(other_train["ID"])
    assert set(train["ID"]).isdisjoint(val["ID"]) and len(train) + len(val) == len(demo_frame)
    shares = val["intention"].value_counts() / demo_frame["intention"].value_counts()
    assert shares.between(0.2, 0.3).all()


def test_split_keeps_singleton_intents_in_train(demo_frame: pd.DataFrame) -> None:
    frame = pd.concat([demo_frame, pd.DataFrame({"ID": [10_000], "question": ["rare"], "intention": [40]})])
    train, val = stratified_split(frame, val_size=0.2, seed=0)
    assert 40 in set(train["intention"]) and 40 not in set(val["intention"])


def test_split_rejects_a_bad_size(demo_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        stratified_split(demo_frame, val_size=1.5, seed=0)


def test_locate_dataset_prefers_local_files_and_falls_back_to_demo(files: tuple[Path, Path], tmp_path: Path) -> None:
    folder, info = locate_dataset(files[0].parent)
    assert (info.source, folder) == ("csv", files[0].parent) and len(info.sha256) == 64
    _, demo = locate_dataset(tmp_path / "empty")
    assert demo.is_demo


def test_locate_dataset_knows_data_decrypted_from_an_archive(files: tuple[Path, Path], tmp_path: Path) -> None:
    from intent_lib.data import record_archive_origin

    archive = _write(tmp_path / "data.tgz.gpg", b"encrypted bytes")
    record_archive_origin(files[0].parent, archive)
    _, info = locate_dataset(files[0].parent)
    sha = hashlib.sha256(b"encrypted bytes").hexdigest()
    assert (info.source, info.location, info.archive_sha256) == ("archive", f"archive sha256 {sha[:12]}", sha)
    (tmp_path / "run").mkdir()
    mounted_elsewhere = _write(tmp_path / "run" / "archive", b"encrypted bytes")  # as the trainer container sees it
    record_archive_origin(files[0].parent, mounted_elsewhere)
    assert locate_dataset(files[0].parent)[1] == info, "what the card records does not depend on the mount"
    _write(files[1], "ID,intention\n0,44\n1,28\n2,28\n3,2\n")  # edited since: no longer the archive's data
    _, edited = locate_dataset(files[0].parent)
    assert edited.source == "csv" and "/" not in edited.location.strip("/").split("/")[0]
