"""tokendice diff: where two generations fork, and how far their log-probs drifted before."""

from __future__ import annotations

import argparse

HELP = "compare two generations (stored runs, ID:SAMPLE, or trace JSON files): first divergence, top-k there, log-prob drift"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help=HELP, description=HELP)
    p.add_argument("a", help="a run id (its trace, else sample 0), ID:SAMPLE, ID:PROMPT:SAMPLE, or a file from tokendice trace --json")
    p.add_argument("b", help="the other side, in the same forms")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.add_argument("--db", default=None, help="run store (default $TOKENDICE_DB or the user data directory)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    report = api.diff(args.a, args.b, db=args.db)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    from tokendice.render.diff_terminal import diff_renderable
    from tokendice.render.terminal import make_console

    make_console().print(diff_renderable(report))
    return 0
