"""Line-by-line UTF-8 decoding, so every bad byte is reported with its line number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Literal

from embedx.contract.errors import InputError

EncodingErrors = Literal["strict", "replace", "ignore"]
_BOM = "\ufeff"


def decoded_lines(handle: BinaryIO, source: str, errors: EncodingErrors) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with the newline kept; NUL counts as an encoding error."""
    for number, raw in enumerate(handle, start=1):
        try:
            text = raw.decode("utf-8", errors=errors)
        except UnicodeDecodeError as exc:
            bad = raw[exc.start:exc.start + 4]
            raise InputError(
                f"{source}, line {number}: invalid UTF-8 at byte {exc.start} ({bad!r}); fix the file, "
                "or pass --encoding-errors replace (U+FFFD) or ignore (drop the bytes)"
            ) from None
        if number == 1 and text.startswith(_BOM):
            text = text[1:]
        if "\x00" in text:
            if errors == "strict":
                raise InputError(
                    f"{source}, line {number}: NUL byte at character {text.index(chr(0))}; text files must not "
                    "contain NUL: pass --encoding-errors replace (U+FFFD) or ignore (drop it)"
                )
            text = text.replace("\x00", "\ufffd" if errors == "replace" else "")
        yield number, text


def strip_newline(text: str) -> str:
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text
