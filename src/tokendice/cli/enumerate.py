"""tokendice enumerate: every completion with its exact probability, best first."""

from __future__ import annotations

import argparse
import json

from tokendice.cli._legacy import add_model_args, add_sampling_args, add_store_args, check_prompt, load_engine_from_args, open_store, params_from_args, progress_enabled

HELP = "enumerate completions exactly (best-first over the prefix tree) with their probabilities and the mass left"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enumerate", help=HELP, description=HELP)
    p.add_argument("prompt", help="the prompt text")
    p.add_argument("--mass", type=float, default=0.99, help="stop once the completions found hold this much probability (default 0.99)")
    p.add_argument("--max-nodes", type=int, default=2000, help="prefixes to expand at most (default 2000)")
    p.add_argument("--min-prob", type=float, default=1e-7, help="ignore prefixes less likely than this (default 1e-7)")
    p.add_argument("--rows", type=int, default=20, help="completions shown (default 20)")
    p.add_argument("--json", action="store_true", help="print the enumeration as JSON")
    add_sampling_args(p, max_new_tokens=10)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice.cli.progress import progress_bar
    from tokendice.engines.base import require_logits
    from tokendice.experiments.decoding.enumerate import enumerate_completions
    from tokendice.experiments.decoding.prompting import encode_prompt
    from tokendice.store import build_manifest

    params = params_from_args(args)
    check_prompt(args.prompt)
    store = open_store(args)
    engine = load_engine_from_args(args)
    require_logits(engine, "exact enumeration (every completion with its probability)")
    prompt_ids = encode_prompt(engine.tokenizer, args.prompt, args.chat)
    extra = {"enumerate": {"prompt": args.prompt, "chat": args.chat, "mass": args.mass, "max_nodes": args.max_nodes, "min_prob": args.min_prob}}
    run_id = store.create_run("enumerate", build_manifest("enumerate", params.to_dict(), engine.describe(), extra), args.prompt, engine.name, engine.model_id)
    with progress_bar("enumerating", args.max_nodes, progress_enabled(args), unit="prefixes") as advance:
        result = enumerate_completions(engine, prompt_ids, params, mass=args.mass, max_nodes=args.max_nodes, min_prob=args.min_prob, progress=advance)
    data = {"run_id": run_id, "prompt": args.prompt, "params": params.to_dict(), **result.to_dict()}
    store.save_result(run_id, "enumeration", data)
    store.set_status(run_id, "complete")
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        from tokendice.render.sample_terminal import enumeration_renderable
        from tokendice.render.terminal import make_console

        console = make_console()
        console.print(enumeration_renderable(result, rows=args.rows))
        console.print(f"run {run_id} stored in {store.path}")
    return 0
