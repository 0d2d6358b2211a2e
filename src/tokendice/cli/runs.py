"""tokendice runs: list, show and export stored runs."""

from __future__ import annotations

import argparse

from tokendice.cli.common import add_store_args

HELP = "list, show and export the runs in the store"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help=HELP, description=HELP)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the most recent runs")
    ls.add_argument("--limit", type=int, default=20, help="runs shown (default 20)")
    ls.add_argument("--kind", help="only runs of this kind (trace, sample, enumerate, audit, compare, perturb)")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    show = actions.add_parser("show", help="a run's manifest, status and results (JSON)")
    show.add_argument("run_id", help="run id (or a unique prefix of 4+ characters)")
    export = actions.add_parser("export", help="write a run's samples (or per-step rows) as jsonl, csv or parquet")
    export.add_argument("run_id")
    export.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    export.add_argument("--steps", action="store_true", help="one row per generated token instead of one per sample")
    export.add_argument("--output", "-o", help="file to write (default stdout; parquet needs a file)")
    for sp in (ls, show, export):
        add_store_args(sp)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    if args.action == "list":
        runs = api.runs(limit=args.limit, kind=args.kind, db=args.db)
        if args.json:
            print(runs.to_json())
        else:
            from tokendice.render.terminal import print_result

            print_result(runs)
    elif args.action == "show":
        print(api.show_run(args.run_id, db=args.db).to_json())
    else:
        rows = api.export_run(args.run_id, args.format, steps=args.steps, output=args.output, db=args.db)
        if args.output:
            print(f"wrote {rows} rows to {args.output}")
    return 0
