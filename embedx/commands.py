"""What every ``embedx`` command shares, the core's and plugins': one-line errors and the shared choices.

Kept apart from ``embedx.cli`` so a plugin's command module can use it without importing the
whole command line.
"""

from __future__ import annotations

import functools
from enum import Enum

import typer


class EncodingErrors(str, Enum):
    """What to do with bytes that are not UTF-8 in an input file."""

    strict = "strict"
    replace = "replace"
    ignore = "ignore"


def escape(text: str) -> str:
    """``text`` with rich markup disabled, so file names with brackets print as they are."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (2 for bad input, 130 for Ctrl-C)."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def guarded_with(interrupted: str):
    """A decorator for commands (plugins' too): embedx errors print as one line and exit 2;
    Ctrl-C prints ``interrupted`` and exits 130."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from embedx.errors import EmbedxError

            try:
                return fn(*args, **kwargs)
            except EmbedxError as exc:
                fail(escape(str(exc)))
            except KeyboardInterrupt:
                fail(interrupted, 130)

        return wrapper

    return decorate
