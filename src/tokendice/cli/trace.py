"""tokendice trace: one generation, every step explained."""

from __future__ import annotations

import argparse
import json

from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args, check_prompt, load_engine_from_args, open_store, params_from_args, rng_from_args

HELP = "generate once and show, at every step, what the model believed and what was sampled"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help=HELP, description=HELP)
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--top", type=int, default=5, help="alternatives shown per step (default 5)")
    p.add_argument("--json", action="store_true", help="print the whole trace as JSON")
    p.add_argument("--html", metavar="FILE", help="also write an HTML view of the trace to FILE")
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    rng = rng_from_args(args)
    check_prompt(args.prompt)
    from tokendice.experiments.trace import run_trace

    engine = load_engine_from_args(args)
    if not getattr(engine, "white_box", True):
        return run_blackbox(args, engine, params, rng)
    trace = run_trace(engine, args.prompt, params, seed=rng.seed, rng_mode=rng.mode, top=args.top, chat=args.chat)
    run_id = store_trace(open_store(args), engine, trace, args.chat)
    if args.html:
        from tokendice.render.html import trace_html

        with open(args.html, "w", encoding="utf-8") as f:
            f.write("<!doctype html><meta charset='utf-8'>" + trace_html(trace))
    if args.json:
        print(json.dumps({"run_id": run_id, **trace.to_dict()}, indent=2, ensure_ascii=False))
    else:
        from tokendice.render.trace_terminal import make_console, print_trace

        console = make_console()
        print_trace(trace, console)
        console.print(f"[dim]run {run_id} stored (tokendice runs show {run_id})[/]")
    return 0


def run_blackbox(args: argparse.Namespace, engine, params, rng) -> int:
    """A trace on a server: reported tokens and logprobs; warnings on stderr and in the JSON."""
    import sys

    from tokendice.errors import ParameterError
    from tokendice.experiments.blackbox_runs import run_blackbox_trace, store_blackbox_trace

    if args.html:
        raise ParameterError("--html shows per-stage probabilities, which a black-box engine does not report: use --json")
    trace = run_blackbox_trace(engine, args.prompt, params, seed=rng.seed, rng_mode=rng.mode, top=args.top, chat=args.chat)
    run_id = store_blackbox_trace(open_store(args), engine, trace)
    for warning in trace.warnings:
        print(f"tokendice: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run_id": run_id, **trace.to_dict()}, indent=2, ensure_ascii=False))
    else:
        from tokendice.render.blackbox_terminal import print_blackbox_trace
        from tokendice.render.trace_terminal import make_console

        console = make_console()
        print_blackbox_trace(trace, console)
        console.print(f"[dim]run {run_id} stored (tokendice runs show {run_id})[/]")
    return 0


def store_trace(store, engine, trace, chat: bool) -> str:
    """Keep the trace as a run: its sample 0 in the samples table, the whole trace as a result."""
    from tokendice.store import SampleRecord, build_manifest

    extra = {"trace": {"prompt": trace.prompt, "seed": trace.seed, "rng": trace.rng, "top": len(trace.steps[0].top) if trace.steps else 0, "chat": chat}}
    run_id = store.create_run("trace", build_manifest("trace", trace.params, engine.describe(), extra), trace.prompt, engine.name, engine.model_id, n_requested=1)
    steps = trace.steps
    store.add_samples(run_id, [SampleRecord(0, trace.token_ids, [s.text for s in steps], trace.text,
                                            [s.chosen.model_logprob for s in steps], [s.chosen.sampling_logprob for s in steps], trace.finish_reason)])
    store.save_result(run_id, "trace", trace.to_dict())
    store.set_status(run_id, "complete")
    return run_id
