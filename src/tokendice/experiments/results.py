"""Typed results: what every experiment returns and the API hands out.

One class per kind of result (a trace, a sample run, an enumeration, an audit, ...),
each a `Result`:

- `to_dict()`: the one serialisation. The CLI's `--json` prints it, the store keeps
  it, and `from_dict` reads it back (`load_run`), so a stored run and a live result
  give the same dict, timing fields aside.
- `to_json()`; `to_dataframe()`: pandas, long form, one row per `rows()` entry, with
  the columns `COLUMNS` (documented in the README).
- `_repr_html_()`: the notebook view; `save_html(path)`: the same as a self-contained page.
  Views are drawn by `tokendice.render`, which registers itself here (`set_views`):
  experiments compute, views draw.
- `repr()`: one line: what it is, the prompt, the headline numbers.
"""

from __future__ import annotations

import dataclasses
import json
from html import escape
from typing import Any, Callable, ClassVar, TypeVar

R = TypeVar("R", bound="Result")

_html_view: Callable[[Result], str] | None = None
_page_writer: Callable[[list[Result], Any], Any] | None = None


def set_views(html: Callable[[Result], str], page: Callable[[list[Result], Any], Any]) -> None:
    """Install the functions that draw results as HTML (the package root does, from tokendice.render)."""
    global _html_view, _page_writer
    _html_view, _page_writer = html, page


class Result:
    """Base class of every typed result (see the module docstring)."""

    kind: ClassVar[str] = "result"
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        """The long-form table behind `to_dataframe`: one dict per row, keys in COLUMNS."""
        raise NotImplementedError

    def headline(self) -> str:
        """The prompt and the headline numbers, in one line."""
        raise NotImplementedError

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def columns(self) -> list[str]:
        """The DataFrame's columns: COLUMNS (a result may add some, e.g. one per sampler stage)."""
        return list(self.COLUMNS)

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of `rows()` with the columns `columns()` (pandas is imported here)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is in the test extras
            from tokendice.errors import EngineUnavailableError

            raise EngineUnavailableError("to_dataframe needs pandas: pip install 'tokendice[pandas]'") from exc
        return pd.DataFrame(self.rows(), columns=self.columns())

    def __repr__(self) -> str:
        run = f" run {self.run_id}" if self.run_id else ""
        return f"<{type(self).__name__}{run}: {self.headline()}>"

    def _repr_html_(self) -> str:
        if _html_view is None:
            return f"<pre>{escape(repr(self))}</pre>"
        return _html_view(self)

    def save_html(self, path: Any) -> Any:
        """Write this result as one self-contained HTML page (opens offline; fetches nothing).
        Returns the path written."""
        from tokendice.inputs import check_output_path

        target = check_output_path(path, "path")
        if _page_writer is None:  # pragma: no cover - the package root installs it
            raise RuntimeError("tokendice.render is not installed")
        return _page_writer([self], target)


def clip(text: str, width: int = 60) -> str:
    """A prompt or completion for a one-line repr: quoted, with whitespace made visible, clipped."""
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= width else shown[: width - 2] + '…"'


def init_fields(cls: type, data: dict[str, Any], *skip: str) -> dict[str, Any]:
    """The entries of `data` that are init fields of dataclass `cls` (ClassVars such as `kind`
    are not), less `skip`: what `from_dict` passes on as they are."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in data.items() if k in names and k not in skip}
