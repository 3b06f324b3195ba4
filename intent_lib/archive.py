"""Decrypt the dataset archive (GPG symmetric, a .tgz inside) into a folder, all or nothing.

The passphrase comes from ``POSOS_PASSPHRASE`` or from the file named by ``POSOS_PASSPHRASE_FILE``;
it reaches gpg through a pipe (never argv) and is never logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import gnupg

from intent_lib.paths import DATASET_FILES, DEFAULT_ARCHIVE

log = logging.getLogger(__name__)
logging.getLogger("gnupg").setLevel(logging.CRITICAL)  # its warnings repeat gpg's errors, which we report ourselves

PASSPHRASE_ENV = "POSOS_PASSPHRASE"
PASSPHRASE_FILE_ENV = "POSOS_PASSPHRASE_FILE"


class ArchiveError(RuntimeError):
    """The archive could not be decrypted or unpacked; the message says what to do."""


def read_passphrase(env: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """The passphrase from ``POSOS_PASSPHRASE`` or ``POSOS_PASSPHRASE_FILE`` (first line, stripped)."""
    if value := env.get(PASSPHRASE_ENV):
        return value
    if file := env.get(PASSPHRASE_FILE_ENV):
        path = Path(file)
        if not path.is_file():
            raise ArchiveError(f"{PASSPHRASE_FILE_ENV} names {path}, which is not a readable file.")
        lines = path.read_text(encoding="utf-8").splitlines()
        if lines and lines[0].strip():
            return lines[0].strip()
        raise ArchiveError(f"The passphrase file {path} is empty.")
    raise ArchiveError(
        f"No passphrase: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV} (a file holding it) to decrypt the archive."
    )


def decrypt_archive(archive: Path, dest: Path, passphrase: str) -> list[Path]:
    """Decrypt ``archive`` and place its CSV files in ``dest``; on any error ``dest`` is left untouched."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"Archive not found: {archive}. Set DATA_ARCHIVE to the path of your {DEFAULT_ARCHIVE}.")
    if shutil.which("gpg") is None:
        raise ArchiveError("GnuPG (gpg) is not installed: install it (apt-get install gnupg) and retry.")
    dest.parent.mkdir(parents=True, exist_ok=True)  # the work happens beside dest: a failure creates nothing in it
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".decrypt-") as tmp:
        tmpdir = Path(tmp)
        tarball = tmpdir / "decrypted.tgz"
        gpg = gnupg.GPG(gnupghome=str(tmpdir))
        with archive.open("rb") as fh:
            result = gpg.decrypt_file(fh, passphrase=passphrase, output=str(tarball), extra_args=["--no-symkey-cache"])
        if not result.ok or not tarball.is_file():
            raise ArchiveError(_decrypt_failure(archive, result.stderr or ""))
        extracted = _extract_csvs(tarball, tmpdir / "out", archive)
        dest.mkdir(exist_ok=True)
        return [Path(shutil.move(str(src), dest / src.name)) for src in extracted]


def _decrypt_failure(archive: Path, stderr: str) -> str:
    """What went wrong, from gpg's messages: the passphrase, or the file itself."""
    if "BAD_PASSPHRASE" in stderr or "bad session key" in stderr.lower():
        return f"Could not decrypt {archive}: wrong passphrase. Check POSOS_PASSPHRASE or POSOS_PASSPHRASE_FILE."
    reasons = [line.removeprefix("gpg: ") for line in stderr.splitlines() if line.startswith("gpg: ")]
    detail = f" (gpg: {reasons[-1]})" if reasons else ""
    return f"Could not decrypt {archive}: the file is damaged or not a GPG archive{detail}."


def _extract_csvs(tarball: Path, out: Path, archive: Path) -> list[Path]:
    """Extract the expected CSV files (by base name, regular files only) from the decrypted tarball."""
    out.mkdir()
    found: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in DATASET_FILES and name not in found:
                    source = tar.extractfile(member)
                    assert source is not None  # regular files always have content
                    target = out / name
                    with target.open("wb") as fh:
                        shutil.copyfileobj(source, fh)
                    found[name] = target
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive} decrypted but is not a valid .tgz archive ({exc}).") from exc
    missing = [name for name in DATASET_FILES if name not in found]
    if missing:
        raise ArchiveError(f"{archive} lacks {', '.join(missing)}; expected {', '.join(DATASET_FILES)}.")
    return [found[name] for name in DATASET_FILES]
