"""tokendice explore: a local web app to click a token, fork, and see every branch's exact probability."""

from __future__ import annotations

import argparse

from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args, engine_from_args, random_keywords, sampling_keywords

HELP = "explore a prompt in the browser: click any alternative token to fork there, sample from any node, change the sampler"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help=HELP, description=HELP + ". Binds to 127.0.0.1 unless --host says otherwise.")
    p.add_argument("prompt", nargs="?", help="the prompt to explore (or --open RUN_ID)")
    p.add_argument("--open", metavar="RUN_ID", default=None, help="reopen a stored tree (a run id) or an exported JSON file")
    p.add_argument("--port", type=int, default=None, help="port to serve on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else exposes the model to that network)")
    p.add_argument("--top", type=int, default=None, help="alternatives shown per step (default 10)")
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api
    from tokendice.explore.serve import serve

    top = {"top": args.top} if args.top is not None else {}
    if args.open is not None:
        explorer = api.explore(open=args.open, db=args.db)
    else:
        explorer = api.explore(args.prompt, engine=engine_from_args(args), db=args.db, **top, **random_keywords(args), **sampling_keywords(args))
    serve(explorer, host=args.host, port=args.port)
    return 0
