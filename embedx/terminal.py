"""Text from files, made safe to print on a terminal.

A feature file, a head or a journal can carry any string: set names, options, column names, error
text quoted from a file. Printed as they are, control characters in them drive the terminal: OSC 52
writes the clipboard, OSC 8 makes clickable links, CSI sequences move the cursor or rewrite what
was printed, and bidirectional overrides reorder what a reader sees. Rich markup in them would
restyle or hide text. Every string embedx prints that did not come from embedx's own code goes
through :func:`printable` (plain output) or :func:`escape` (rich output).
"""

from __future__ import annotations

import logging
import re

#: C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI, 0x9d a one-byte OSC),
#: the bidirectional embeddings, overrides and isolates, and the line and paragraph separators
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, one_line: bool = False) -> str:
    """``text`` with every terminal control character written as a visible escape (``\\x1b``).

    ``one_line`` also escapes newlines and tabs, for values that must not break a line of output."""
    result = _UNSAFE.sub(_visible, str(text))
    if one_line:
        result = result.replace("\n", "\\n").replace("\t", "\\t")
    return result


def escape(text: object, *, one_line: bool = False) -> str:
    """``text`` safe for a rich console: control characters escaped and markup disabled."""
    from rich.markup import escape as rich_escape

    return rich_escape(printable(text, one_line=one_line))


#: what rich itself writes to a terminal: styles (SGR), erasing a line, moving and showing the cursor, and
#: the carriage return of a progress bar
_RICH_CSI = re.compile(r"\x1b\[(?:[0-9;]*[mKABCDGJ]|\?25[hl])|\r")


class SafeStream:
    """A text stream that writes every control character it is given as a visible escape.

    The last line of defence under :func:`printable`: a string no command thought to escape
    still cannot set the clipboard, a link or a title. On a terminal the sequences rich uses for
    colour and progress bars pass; anywhere else (a pipe, a file, a test) nothing does."""

    def __init__(self, stream):
        self._stream = stream
        self._tty = _isatty(stream)

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as a text stream does: click probes with write(b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._tty:
            pieces = _RICH_CSI.split(text)
            kept = _RICH_CSI.findall(text)
            safe = "".join(printable(p) + (kept[i] if i < len(kept) else "") for i, p in enumerate(pieces))
        else:
            safe = printable(text)
        self._stream.write(safe)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        if name == "buffer":  # writing bytes would go round the filter
            raise AttributeError(name)
        return getattr(self._stream, name)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def guard_standard_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`SafeStream` (the CLI does, once)."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))


class _StderrWarnings(logging.Handler):
    """Each record as one line ``embedx: MESSAGE`` on whatever ``sys.stderr`` is when it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        import sys

        try:
            message = record.getMessage()
            if record.exc_info and record.levelno >= logging.ERROR and record.exc_info[1] is not None:
                message = f"{message} ({record.exc_info[1]})"
            stream = sys.stderr
            if stream is not None:
                stream.write(f"embedx: {printable(message, one_line=True)}\n")
                stream.flush()
        except Exception:  # a broken stderr must not turn a warning into a failure
            self.handleError(record)


def log_warnings_to_stderr(level: int = logging.WARNING) -> None:
    """The CLI's view of the library's log: warnings and worse of every ``embedx.*`` logger, one line each.

    The library only logs (``logging.getLogger(__name__)``); callers of the Python API choose their own handlers.
    Calling this twice installs one handler.
    """
    logger = logging.getLogger("embedx")
    if not any(isinstance(h, _StderrWarnings) for h in logger.handlers):
        handler = _StderrWarnings(level)
        logger.addHandler(handler)
    logger.setLevel(min(logger.level or level, level))
