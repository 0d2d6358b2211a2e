"""Progress of long calls, in a terminal (a rich bar on stderr) and in a notebook (an HTML bar
updated in place, with no widget library), from one place.

`progress_bar(show, total, label, unit)` yields `advance(units, label=None)`. `show` None
means: when someone is watching (stderr is a terminal, or the code runs in a Jupyter
kernel); True/False force it; a callable receives `(units, label)` instead of a bar.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from html import escape
from typing import Callable, Iterator, Union

Advance = Callable[..., None]
"""advance(units: int, label: str | None = None)."""

ProgressOption = Union[bool, None, Callable[[int, str], None]]


def in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def watched() -> bool:
    return in_notebook() or sys.stderr.isatty()


@contextmanager
def progress_bar(show: ProgressOption, total: int | None, label: str, unit: str = "steps", done: int = 0) -> Iterator[Advance]:
    """A bar for `total` units (None: unknown), starting at `done`."""
    if callable(show):
        callback = show

        def forward(units: int, new_label: str | None = None) -> None:
            callback(units, new_label or label)

        yield forward
        return
    if show is None:
        show = watched()
    if not show:
        yield lambda units, new_label=None: None
        return
    bar = _NotebookBar if in_notebook() else _TerminalBar
    with bar(total, label, unit, done) as advance:
        yield advance


class _TerminalBar:
    def __init__(self, total: int | None, label: str, unit: str, done: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.unit = unit
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=total, completed=done, rate="")

    def __enter__(self) -> Advance:
        self.progress.start()
        return self.advance

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, units: int, label: str | None = None) -> None:
        self.progress.update(self.task, advance=units, **({"description": label} if label else {}))
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:.1f} {self.unit}/s" if speed else "")


class _NotebookBar:
    """An HTML bar in the cell's output, replaced in place (IPython display ids), at most ~4 times a second."""

    def __init__(self, total: int | None, label: str, unit: str, done: int) -> None:
        from IPython.display import HTML, display

        self.HTML, self.total, self.label, self.unit, self.done = HTML, total, label, unit, done
        self.started = self.last = time.monotonic()
        self.handle = display(HTML(self._html()), display_id=True)

    def __enter__(self) -> Advance:
        return self.advance

    def __exit__(self, *exc: object) -> None:
        self._show()

    def advance(self, units: int, label: str | None = None) -> None:
        self.done += units
        self.label = label or self.label
        if time.monotonic() - self.last >= 0.25:
            self._show()

    def _show(self) -> None:
        self.last = time.monotonic()
        if self.handle is not None:
            self.handle.update(self.HTML(self._html()))

    def _html(self) -> str:
        elapsed = time.monotonic() - self.started
        share = min(1.0, self.done / self.total) if self.total else 0.0
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        rate = f" · {self.done / elapsed:.1f} {self.unit}/s" if elapsed > 0.5 and self.done else ""
        return (
            f'<div style="font-family:monospace;font-size:12px">{escape(self.label)} '
            f'<progress value="{share:.4f}" max="1" style="width:240px;vertical-align:middle"></progress> '
            f"{count} {escape(self.unit)} · {elapsed:.0f} s{rate}</div>"
        )
