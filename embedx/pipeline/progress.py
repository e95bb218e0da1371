"""A rich progress bar with texts/s and ETA, or nothing when not wanted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws on stderr when ``enabled``.

    rich is imported only when a bar is drawn: a run without one (``--no-progress``, the Python API,
    a cached re-run) does not pay for it.
    """
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- texts/s" if speed is None else f"{speed:,.0f} texts/s", style="cyan")

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
