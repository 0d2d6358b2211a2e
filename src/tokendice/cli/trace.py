"""tokendice trace: one generation, every step explained."""

from __future__ import annotations

import argparse
import sys

from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args, engine_from_args, random_keywords, sampling_keywords, show
from tokendice.inputs import check_output_path

HELP = "generate once and show, at every step, what the model believed and what was sampled"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help=HELP, description=HELP)
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--top", type=int, default=None, help="alternatives shown per step (default 5)")
    p.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    p.add_argument("--html", metavar="FILE", help="also write an HTML view of the trace to FILE")
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api
    from tokendice.errors import ParameterError

    if args.html:
        check_output_path(args.html, "html")
    if args.html and args.engine == "openai":
        raise ParameterError("--html shows per-stage probabilities, which a black-box engine does not report: use --json")
    top = {"top": args.top} if args.top is not None else {}
    result = api.trace(args.prompt, engine=engine_from_args(args), db=args.db, **top, **random_keywords(args), **sampling_keywords(args))
    for warning in getattr(result, "warnings", []):
        print(f"tokendice: warning: {warning}", file=sys.stderr)
    if args.html:
        result.save_html(args.html)
    return show(result, args)
