"""The HTML around the views: one self-contained page for a report, one fragment for a notebook.

Nothing is fetched: styles are inline, charts are inline SVG, and there is no script at
all; interaction is CSS (`:target` to select a step, a radio toggle to switch colours,
`<title>` tooltips). The page's Content-Security-Policy forbids every request and every
script, so even a mistake in escaping model text could not run anything.
"""

from __future__ import annotations

import itertools
from html import escape
from typing import Iterable

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'; base-uri 'none'; form-action 'none'"

STYLE = """
.td{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;font-size:13px;color:#1d1d1f;line-height:1.45;max-width:1100px}
.td h2{font-size:17px;margin:18px 0 4px 0}
.td h3{font-size:14px;margin:14px 0 4px 0}
.td .td-meta{color:#555;margin:2px 0 8px 0}
.td .td-note{color:#555;font-size:12px;margin:4px 0}
.td table{border-collapse:collapse;margin:6px 0}
.td th{text-align:left;font-weight:600;border-bottom:1px solid #ccc;padding:2px 8px}
.td td{padding:2px 8px;border-bottom:1px solid #f0f0f0;vertical-align:top}
.td td.n{text-align:right;font-variant-numeric:tabular-nums}
.td tr.td-removed td{color:#aaa}
.td tr.td-chosen td{font-weight:600}
.td code,.td .tok{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap}
.td .td-card{border:1px solid #e3e3e3;border-radius:6px;padding:10px 14px;margin:12px 0;background:#fff;overflow-x:auto}
.td .td-candidates td.tok{white-space:pre}
.td .td-tokens{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;line-height:2.1;white-space:pre-wrap}
.td .td-tokens a{color:inherit;text-decoration:none;border-radius:3px;padding:1px 0}
.td .td-tokens a:hover{outline:1px solid #333}
.td .td-prompt{color:#777}
.td .td-toggle{font-size:12px;color:#555}
.td .td-tokens.td-by-model a{background:var(--pm)}
.td .td-tokens.td-by-sampling a{background:var(--ps)}
.td input.td-model:checked~.td-tokens.td-by-sampling{display:none}
.td input.td-sampling:checked~.td-tokens.td-by-model{display:none}
.td .td-step{display:none}
.td .td-step.td-first{display:block}
.td .td-steps:has(.td-step:target) .td-step.td-first:not(:target){display:none}
.td .td-step:target{display:block}
.td .td-bad{color:#c8423b;font-weight:600}
.td .td-good{color:#3d9a52;font-weight:600}
.td .td-side{display:inline-block;vertical-align:top;width:48%;margin-right:1%}
.td mark{background:#ffd9d6;border-radius:2px}
.td .td-wide td.tok{overflow-wrap:anywhere;min-width:5em}
"""

_ids = itertools.count()


def uid(prefix: str = "td") -> str:
    """An id prefix unique in this process, so that two views in one notebook never share ids."""
    return f"{prefix}{next(_ids)}-"


def page(title: str, sections: Iterable[str]) -> str:
    """A whole HTML document holding the sections, with nothing to fetch."""
    body = "\n".join(sections)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}body{{margin:20px 28px;background:#fafafa}}</style></head>"
        f'<body><div class="td"><h1 style="font-size:20px;margin:0 0 6px 0">{escape(title)}</h1>{body}</div></body></html>\n'
    )


def fragment(section: str) -> str:
    """A view for a notebook cell: its own style, then the section."""
    return f'<div class="td"><style>{STYLE}</style>{section}</div>'


def card(title: str, meta: str, *parts: str) -> str:
    return f'<section class="td-card"><h2>{escape(title)}</h2><div class="td-meta">{meta}</div>{"".join(parts)}</section>'


def note(text: str) -> str:
    return f'<p class="td-note">{escape(text)}</p>'
