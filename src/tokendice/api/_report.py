"""`report`: results drawn as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from tokendice.api._runs import load_run
from tokendice.errors import ParameterError
from tokendice.experiments.results import Result
from tokendice.inputs import check_output_path
from tokendice.render.notebook import write_report


def report(*runs: Union[str, Result], output: Union[str, Path] = "report.html", title: str | None = None, db: str | None = None) -> Path:
    """Write one HTML page holding every run given (stored run ids, or results) and return its path.

    The page is self-contained: charts are inline SVG, there is no script, and it fetches
    nothing (its Content-Security-Policy forbids it), so it opens from disk, offline, and can be
    shared as one file. Each result is drawn as its notebook view is.
    """
    if not runs:
        raise ParameterError("report needs at least one run id or result", param="runs")
    target = check_output_path(output, "output")
    if title is not None and not isinstance(title, str):
        raise ParameterError(f"title must be a string, got {title!r}", param="title")
    results = []
    for item in runs:
        if isinstance(item, Result):
            results.append(item)
        elif isinstance(item, str):
            results.append(load_run(item, db=db))
        else:
            raise ParameterError(f"runs are run ids or results, got {item!r}", param="runs")
    return write_report(results, target, title)
