"""A progress bar on stderr for long commands (off when stderr is not a terminal or with --json)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(description: str, total: int, enabled: bool, unit: str = "samples") -> Iterator[Callable[[int], None]]:
    """Yields `advance(k)`; shows done/total, rate in `unit`/s and time left."""
    if not enabled:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(k: int) -> None:
            bar.advance(task, k)
            t = bar.tasks[0]
            speed = t.finished_speed or t.speed
            bar.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield advance
