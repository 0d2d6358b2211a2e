"""tokendice runs: list, show and export stored runs."""

from __future__ import annotations

import argparse
import json

from tokendice.cli.common import add_store_args, open_store

HELP = "list, show and export the runs in the store"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help=HELP, description=HELP)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the most recent runs")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--kind", help="only runs of this kind (trace, sample, enumerate, audit, ...)")
    show = actions.add_parser("show", help="a run's manifest, status and results")
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
    store = open_store(args)
    if args.action == "list":
        from rich.table import Table

        from tokendice.render.trace_terminal import make_console

        table = Table(title=f"runs in {store.path}", title_justify="left")
        for col in ("id", "kind", "created (UTC)", "status", "engine/model", "samples", "prompt"):
            table.add_column(col)
        for r in store.list_runs(limit=args.limit, kind=args.kind):
            n = f"{r.n_samples}/{r.n_requested}" if r.n_requested else str(r.n_samples)
            table.add_row(r.id, r.kind, r.created_at[:19], r.status, f"{r.engine}/{r.model}", n, json.dumps(r.prompt or "")[:50])
        make_console().print(table)
    elif args.action == "show":
        r = store.get_run(args.run_id)
        results = {key: store.get_result(r.id, key) for key in store.result_keys(r.id)}
        data = {"id": r.id, "kind": r.kind, "created_at": r.created_at, "status": r.status, "prompt": r.prompt,
                "engine": r.engine, "model": r.model, "n_requested": r.n_requested, "n_samples": r.n_samples,
                "manifest": r.manifest, "results": results}
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        from tokendice.store import export_run, export_steps

        exporter = export_steps if args.steps else export_run
        rows = exporter(store, args.run_id, args.format, args.output)
        if args.output:
            print(f"wrote {rows} rows to {args.output}")
    return 0
