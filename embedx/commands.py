"""What every ``embedx`` command shares, the core's and plugins': one-line errors and the shared choices.

Kept apart from ``embedx.cli`` so a plugin's command module can use it without importing the
whole command line.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path

import typer

from embedx.terminal import escape  # noqa: F401 (re-exported: commands print file-provided text through it)

#: set to 1 (or pass ``embedx --debug``) to see the traceback behind an error
DEBUG_ENV = "EMBEDX_DEBUG"


class EncodingErrors(str, Enum):
    """What to do with bytes that are not UTF-8 in an input file."""

    strict = "strict"
    replace = "replace"  # type: ignore[assignment]  # shadows str.replace, as typer needs
    ignore = "ignore"


def debugging() -> bool:
    """Whether tracebacks are wanted: ``embedx --debug`` or ``EMBEDX_DEBUG=1``."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to stderr and exit with ``code`` (2 for bad input, 130 for Ctrl-C).

    ``message`` is printed as rich markup: pass file-provided text through :func:`escape` first."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def unexpected(exc: BaseException, paths: list[str]) -> str:
    """One line for an exception no embedx check anticipated: what it is, and who is at fault.

    When embedx called into a plugin (``identity()``, an option check, a hook) and the plugin
    raised, the plugin and the call are named: that is where its author must look. Otherwise the
    exception comes from a library reading a file embedx let through (h5py, numpy, zip, json): the
    file is at fault as far as the user can act on it, so name it."""
    what = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    what = what.splitlines()[0] if what else type(exc).__name__
    after = f"(nothing further was written; re-run with --debug or {DEBUG_ENV}=1 for the traceback)"
    culprit = plugin_at_fault(exc)
    if culprit is not None:
        return f"plugin {culprit[0]!r} failed in {culprit[1]}: {what} {after}"
    where = f" while reading {', '.join(paths)}" if paths else ""
    return f"unexpected error{where}: {what} {after}"


def plugin_at_fault(exc: BaseException) -> tuple[str, str] | None:
    """``(plugin name, call)`` when the exception was raised in a plugin's code that embedx called.

    Walks the traceback for the first frame of a plugin's package entered from embedx's code; a
    plugin command that fails in its own body is left to the file rule (see :func:`unexpected`)."""
    import traceback

    from embedx.registry import current_registry, plugin_packages

    registry = current_registry()
    if registry is None:
        return None
    packages = plugin_packages(registry)
    crossed = False  # embedx code ran: a plugin frame after it is a call embedx made
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        top = module.split(".")[0]
        if top == "embedx":
            crossed = crossed or module != __name__  # guarded_with's wrapper is not a call into the plugin
        elif crossed and top in packages:
            return packages[top], f"{frame.f_code.co_qualname}()"
    return None


def _path_arguments(kwargs: dict) -> list[str]:
    """The command's arguments that name existing files or folders: the likely culprits of an error."""
    found = []
    for value in kwargs.values():
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, Path | str) and item and len(str(item)) < 4096:
                try:
                    exists = os.path.lexists(item)
                except (OSError, ValueError):
                    exists = False
                if exists:
                    found.append(str(item))
    return found


def guarded_with(interrupted: str):
    """A decorator for commands (plugins' too): embedx errors print as one line and exit 2; any
    other exception prints as one line naming the files the command was given and exits 1;
    Ctrl-C prints ``interrupted`` and exits 130. ``--debug`` adds the traceback."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from embedx.contract.errors import EmbedxError

            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except EmbedxError as exc:
                _traceback_if_debugging()
                fail(escape(str(exc)))
            except KeyboardInterrupt:
                _traceback_if_debugging()
                fail(interrupted, 130)
            except Exception as exc:  # noqa: BLE001 (the one place that turns any failure into a line)
                if _is_click_exception(exc):
                    raise
                _traceback_if_debugging()
                fail(escape(unexpected(exc, _path_arguments(kwargs)), one_line=True), 1)

        return wrapper

    return decorate


def _is_click_exception(exc: BaseException) -> bool:
    import click

    return isinstance(exc, click.exceptions.ClickException | click.exceptions.Exit | click.exceptions.Abort)


def _traceback_if_debugging() -> None:
    if debugging():
        import traceback

        traceback.print_exc(file=sys.stderr)
