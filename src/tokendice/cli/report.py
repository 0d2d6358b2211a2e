"""tokendice report: stored runs drawn as one self-contained HTML page."""

from __future__ import annotations

import argparse

from tokendice.cli.common import add_store_args

HELP = "draw stored runs as one self-contained HTML page (charts included; opens offline, fetches nothing)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help=HELP, description=HELP)
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="runs to draw (ids or unique prefixes of 4+ characters), in order")
    p.add_argument("--output", "-o", default="report.html", help="the HTML file to write (default report.html)")
    p.add_argument("--title", default=None, help="the page's title (default: the kinds of result it holds)")
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    path = api.report(*args.run_ids, output=args.output, title=args.title, db=args.db)
    print(f"wrote {path}")
    return 0
