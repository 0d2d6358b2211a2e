"""tokendice compare: the same prompt on two models or engines, step by step and as distributions."""

from __future__ import annotations

import argparse
from typing import Any

from tokendice.cli.common import add_sampling_args, add_store_args, given, sampling_keywords, show
from tokendice.engines.spec import DTYPES, EngineSpec, engine_kind
from tokendice.errors import ParameterError

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
--dtype, --threads and --trust-remote-code apply to each engine that takes them.
Examples: tokendice compare "The capital of France is" --engine hf --engine llamacpp
          tokendice compare PROMPT --model ./model-a --model ./model-b
"""

ENGINE_OPTIONS = ("dtype", "threads", "trust_remote_code")
"""Flags shared by both sides, each given to the engines that take it."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompt", help="the prompt text")
    g = p.add_argument_group("what to compare")
    g.add_argument("--model", "-m", dest="models", metavar="MODEL", action="append", default=None, help="a model (repeat: --model A --model B); default the embedded 'smollm2-135m'; a GGUF path for --engine llamacpp")
    g.add_argument("--engine", "-e", dest="engines", metavar="ENGINE", action="append", default=None, help="hf or llamacpp (repeat: --engine hf --engine llamacpp); default hf")
    g.add_argument("--continuation", metavar="TEXT", default=None, help="the shared continuation (default: greedy continuation of the first model/engine)")
    g.add_argument("--top", type=int, default=None, help="k for the max |log-prob difference| over both top-k sets (default 10)")
    g.add_argument("--completions", action=argparse.BooleanOptionalAction, default=None, help="also compare completion distributions by exact enumeration (default on)")
    g.add_argument("--completion-tokens", type=int, default=None, help="length of the enumerated completions (default 2)")
    g.add_argument("--max-nodes", type=int, default=None, help="prefixes each enumeration expands at most (default 50)")
    g.add_argument("--mass", type=float, default=None, help="each enumeration stops once it holds this much probability (default 0.99)")
    g.add_argument("--dtype", default=None, choices=DTYPES, help="dtype of the hf engine (default float32)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads: torch's for hf, llama.cpp's for llamacpp")
    g.add_argument("--trust-remote-code", action="store_true", default=None, help="allow a model's own Python code to run (hf, off by default)")
    p.add_argument("--rows", type=int, default=None, help="steps shown per pair (default all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_sampling_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def engine_sides(args: argparse.Namespace) -> list[Any] | None:
    """One entry per --engine: an EngineSpec with the shared options it takes, or its name when
    it takes none of those given. An option that no engine takes is an error."""
    options = given(args, *ENGINE_OPTIONS)
    if not args.engines and not options:
        return None
    names = args.engines or ["hf"]
    kinds = [engine_kind(name) for name in names]
    for option in options:
        if not any(kind.takes(option) for kind in kinds):
            kinds[0].option(option)  # the engine takes no such option: a ParameterError naming it
    sides: list[Any] = []
    for name, kind in zip(names, kinds):
        taken = {k: v for k, v in options.items() if kind.takes(k)}
        sides.append(EngineSpec(name, **taken) if taken else name)
    return sides


def run(args: argparse.Namespace) -> int:
    from tokendice import api

    for name in ("seed", "rng"):
        if getattr(args, name) is not None:
            raise ParameterError(f"{name} does not apply to compare: it draws nothing at random (a greedy continuation, exact enumerations)", param=name)
    if args.rows is not None and args.rows < 0:
        raise ParameterError(f"rows must be >= 0, got {args.rows}", param="rows")
    keywords = given(args, "continuation", "top", "completions", "completion_tokens", "max_nodes", "mass", "chat")
    report = api.compare(args.prompt, engines=engine_sides(args), models=args.models, db=args.db, **keywords, **sampling_keywords(args))
    return show(report, args, rows=args.rows)
