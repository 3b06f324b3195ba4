"""Decrypting the dataset archive: round trip, wrong passphrase, corrupt or incomplete archives."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from intent_lib.archive import ArchiveError, decrypt_archive, read_passphrase

PASSPHRASE = "correct horse battery staple"
FILES = {"input_train.csv": "ID,question\n0,doliprane enceinte ?\n", "output_train.csv": "ID,intention\n0,44\n",
         "input_test.csv": "ID,question\n1,effets du spasfon\n"}


def _tgz(files: dict[str, str], prefix: str = "data/") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _encrypt(payload: bytes, path: Path, passphrase: str = PASSPHRASE) -> Path:
    home = path.parent / "gnupg-home"
    home.mkdir(mode=0o700, exist_ok=True)
    try:
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
                        "--passphrase-fd", "0", "--symmetric", "-o", str(path)],
                       input=passphrase.encode() + b"\n" + payload, check=True, capture_output=True)
    finally:  # gpg started an agent for this home: stop it, or it outlives the test run
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True)
    return path


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return _encrypt(_tgz(FILES), tmp_path / "data.tgz.gpg")


def test_round_trip_gives_the_three_files(archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    written = decrypt_archive(archive, dest, PASSPHRASE)
    assert sorted(p.name for p in written) == sorted(FILES)
    for name, text in FILES.items():
        assert (dest / name).read_text() == text
    assert sorted(p.name for p in dest.iterdir()) == sorted(FILES)  # no temporary leftovers


def test_wrong_passphrase_is_a_clear_error_and_writes_nothing(archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="wrong passphrase") as info:
        decrypt_archive(archive, dest, "not the passphrase")
    assert "not the passphrase" not in str(info.value)
    assert not dest.exists(), "a failed decryption must not leave an empty folder behind"
    assert not list(tmp_path.glob(".decrypt-*")), "no temporary leftovers beside it"


def test_missing_archive_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="DATA_ARCHIVE"):
        decrypt_archive(tmp_path / "nope.gpg", tmp_path / "out", PASSPHRASE)


def test_encrypted_garbage_is_reported_as_not_a_tgz(tmp_path: Path) -> None:
    archive = _encrypt(b"this is not a tarball", tmp_path / "bad.gpg")
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="not a valid .tgz"):
        decrypt_archive(archive, dest, PASSPHRASE)
    assert not dest.exists()


def test_truncated_archive_fails_cleanly(archive: Path, tmp_path: Path) -> None:
    broken = tmp_path / "truncated.gpg"
    broken.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(ArchiveError):
        decrypt_archive(broken, tmp_path / "out", PASSPHRASE)
    assert not (tmp_path / "out").exists()


def test_archive_missing_a_file_is_rejected_without_partial_output(tmp_path: Path) -> None:
    archive = _encrypt(_tgz({"input_train.csv": FILES["input_train.csv"]}), tmp_path / "partial.gpg")
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="output_train.csv"):
        decrypt_archive(archive, dest, PASSPHRASE)
    assert not dest.exists()


def test_passphrase_from_environment_or_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("from-file\n")
    assert read_passphrase({"POSOS_PASSPHRASE": "from-env", "POSOS_PASSPHRASE_FILE": str(secret)}) == "from-env"
    assert read_passphrase({"POSOS_PASSPHRASE_FILE": str(secret)}) == "from-file"
    with pytest.raises(ArchiveError, match="POSOS_PASSPHRASE"):
        read_passphrase({})
    with pytest.raises(ArchiveError, match="not a readable file"):
        read_passphrase({"POSOS_PASSPHRASE_FILE": str(tmp_path / "missing")})


def test_cli_decrypt_exits_non_zero_with_a_message_on_wrong_passphrase(archive: Path, tmp_path: Path) -> None:
    import os
    import sys
    env = os.environ | {"POSOS_ROOT": str(tmp_path), "DATA_ARCHIVE": str(archive), "POSOS_PASSPHRASE": "wrong"}
    env.pop("POSOS_PASSPHRASE_FILE", None)
    run = subprocess.run([sys.executable, "-m", "intent_lib", "decrypt"], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert "wrong passphrase" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "data").exists()


def test_a_damaged_archive_is_not_blamed_on_the_passphrase(archive: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.gpg"
    data = archive.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="damaged or not a GPG archive") as info:
        decrypt_archive(damaged, tmp_path / "out", PASSPHRASE)
    assert "passphrase" not in str(info.value)
    plain = tmp_path / "plain.gpg"
    plain.write_text("not encrypted at all")
    with pytest.raises(ArchiveError, match="damaged or not a GPG archive"):
        decrypt_archive(plain, tmp_path / "out", PASSPHRASE)


def test_an_unchanged_archive_is_not_decrypted_again(archive: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun reuses data/ while the archive and the decrypted files hash as recorded; anything else decrypts."""
    from intent_lib.data import decrypt_configured_archive

    root = tmp_path / "project"
    monkeypatch.setenv("DATA_ARCHIVE", str(archive))
    monkeypatch.setenv("POSOS_PASSPHRASE", PASSPHRASE)
    assert decrypt_configured_archive(root)
    monkeypatch.setenv("POSOS_PASSPHRASE", "not the passphrase")  # any attempt to decrypt now fails
    assert decrypt_configured_archive(root)
    assert (root / "data" / "input_test.csv").read_text() == FILES["input_test.csv"]

    (root / "data" / "input_test.csv").write_text("ID,question\n1,edited\n")
    with pytest.raises(ArchiveError, match="wrong passphrase"):
        decrypt_configured_archive(root)
    monkeypatch.setenv("POSOS_PASSPHRASE", PASSPHRASE)
    assert decrypt_configured_archive(root) and (root / "data" / "input_test.csv").read_text() == FILES["input_test.csv"]

    other = _encrypt(_tgz(FILES | {"input_test.csv": "ID,question\n2,autre\n"}), tmp_path / "other.tgz.gpg")
    monkeypatch.setenv("DATA_ARCHIVE", str(other))
    monkeypatch.setenv("POSOS_PASSPHRASE", "not the passphrase")
    with pytest.raises(ArchiveError, match="wrong passphrase"):  # another archive: decrypted, not taken as the old one
        decrypt_configured_archive(root)
