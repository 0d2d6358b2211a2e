"""tokendice compare: the same prompt on two models or engines, step by step and as distributions."""

from __future__ import annotations

import argparse

from tokendice.cli._legacy import add_sampling_args, add_store_args, check_prompt, params_from_args

HELP = "compare models or engines on one prompt: per-step KL/JS along a shared continuation, and completion overlap"
DESCRIPTION = """\
Compare the first model/engine with each other one.

Per step, along a shared continuation fed to both (teacher forcing; default: the first
one's greedy continuation, --max-new-tokens long), the two model distributions (softmax
of the raw logits): KL both ways, JS divergence, top-1 agreement, max |log-prob
difference| over both top-k token sets, the continuation token's log-prob under each.

Then, unless --no-completions, the total variation distance between their completion
distributions under the sampler flags: each side's completions of --completion-tokens
tokens (default 2) are enumerated exactly, up to --max-nodes prefixes (default 50; every
expanded prefix costs a forward pass and keeps up to 256 children: about 11 s for the
whole command on the embedded model with --threads 1 on 2 cores). When an enumeration
stops before it holds all the mass, the distance is given as bounds [low, high].

Both sides must share a tokenizer (transformers and llama.cpp on the embedded model do).
Examples: tokendice compare "The capital of France is" --engine hf --engine llamacpp
          tokendice compare PROMPT --model ./model-a --model ./model-b
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompt", help="the prompt text")
    g = p.add_argument_group("what to compare")
    g.add_argument("--model", "-m", action="append", default=[], help="a model (repeat: --model A --model B); default the embedded 'smollm2-135m'; a GGUF path for --engine llamacpp")
    g.add_argument("--engine", "-e", action="append", default=[], help="hf or llamacpp (repeat: --engine hf --engine llamacpp); default hf")
    g.add_argument("--continuation", metavar="TEXT", help="the shared continuation (default: greedy continuation of the first model/engine)")
    g.add_argument("--top", type=int, default=10, help="k for the max |log-prob difference| over both top-k sets (default 10)")
    g.add_argument("--completions", action=argparse.BooleanOptionalAction, default=True, help="also compare completion distributions by exact enumeration (default on)")
    g.add_argument("--completion-tokens", type=int, default=2, help="length of the enumerated completions (default 2)")
    g.add_argument("--max-nodes", type=int, default=50, help="prefixes each enumeration expands at most (default 50)")
    g.add_argument("--mass", type=float, default=0.99, help="each enumeration stops once it holds this much probability (default 0.99)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="dtype of the hf engine")
    g.add_argument("--threads", type=int, default=None, help="CPU threads: torch's for hf, llama.cpp's for llamacpp")
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run (hf, off by default)")
    p.add_argument("--rows", type=int, default=None, help="steps shown per pair (default all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_sampling_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice.api import compare

    params = params_from_args(args)
    check_prompt(args.prompt)
    options = {
        "hf": {"dtype": args.dtype, "threads": args.threads, "trust_remote_code": args.trust_remote_code},
        "llamacpp": {"n_threads": args.threads},
    }
    report = compare(
        args.prompt, models=args.model, engines=args.engine, continuation=args.continuation, top=args.top,
        completions=args.completions, completion_tokens=args.completion_tokens, max_nodes=args.max_nodes, mass=args.mass,
        chat=args.chat, params=params, engine_options=options, db=args.db,
    )  # fmt: skip
    if args.json:
        print(report.to_json())
        return 0
    from tokendice.render.compare_terminal import compare_renderable
    from tokendice.render.terminal import make_console

    console = make_console()
    console.print(compare_renderable(report, rows=args.rows))
    console.print(f"[dim]run {report.run_id} stored (tokendice runs show {report.run_id})[/]")
    return 0
