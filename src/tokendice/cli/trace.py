"""tokendice trace: one generation, every step explained."""

from __future__ import annotations

import argparse

from tokendice.cli.common import add_model_args, add_sampling_args, check_prompt, load_engine_from_args, params_from_args, rng_from_args

HELP = "generate once and show, at every step, what the model believed and what was sampled"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help=HELP, description=HELP)
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--top", type=int, default=5, help="alternatives shown per step (default 5)")
    p.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    p.add_argument("--html", metavar="FILE", help="also write an HTML view of the trace to FILE")
    add_sampling_args(p)
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    rng = rng_from_args(args)
    check_prompt(args.prompt)
    from tokendice.experiments.trace import run_trace

    engine = load_engine_from_args(args)
    trace = run_trace(engine, args.prompt, params, seed=rng.seed, rng_mode=rng.mode, top=args.top, chat=args.chat)
    if args.html:
        from tokendice.render.html import trace_html

        with open(args.html, "w", encoding="utf-8") as f:
            f.write("<!doctype html><meta charset='utf-8'>" + trace_html(trace))
    if args.json:
        print(trace.to_json())
    else:
        from tokendice.render.trace_terminal import print_trace

        print_trace(trace)
    return 0
