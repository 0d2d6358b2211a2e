"""Flags shared by commands, and how they become API keywords.

Every flag defaults to None, "not given": the API function decides the default (one
place), and a resumed run can tell a setting the user gave from one they did not.
"""

from __future__ import annotations

import argparse
from typing import Any

from tokendice.engines.spec import DTYPES, EngineSpec
from tokendice.params import ORDERS, RNG_MODES

ENGINE_FLAGS = ("dtype", "threads", "trust_remote_code", "base_url", "api_key_env", "concurrency", "timeout", "max_retries")
"""Flags that become EngineSpec options (each engine takes some of them)."""


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and engine")
    g.add_argument("--model", "-m", default=None, help="the embedded 'smollm2-135m' (default), a transformers id (in the local Hugging Face cache) or directory, a GGUF path for --engine llamacpp, or the name a server serves (--engine openai; default: its only model)")
    g.add_argument("--engine", "-e", default=None, help="hf (transformers, default), llamacpp, openai (an OpenAI-compatible server)")
    g.add_argument("--dtype", default=None, choices=DTYPES, help="weights and activations dtype (hf; default float32)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (hf: default torch's, the physical cores; llamacpp: default half the CPUs). Recorded: it can change samples")
    g.add_argument("--trust-remote-code", action="store_true", default=None, help="allow a model's own Python code to run (hf; off by default)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (--engine openai), e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default=None, help="environment variable holding the API key (--engine openai; default OPENAI_API_KEY; the key is never stored or printed)")
    g.add_argument("--concurrency", type=int, default=None, help="requests in flight at once (--engine openai, default 8)")
    g.add_argument("--timeout", type=float, default=None, help="seconds to wait for one answer (--engine openai, default 60)")
    g.add_argument("--max-retries", type=int, default=None, help="retries on 429, 5xx and connection errors, with backoff (--engine openai, default 4)")
    g.add_argument("--verbose", action="store_true", help="show what libraries print while loading (progress bars, warnings)")


def add_sampling_args(p: argparse.ArgumentParser, max_new_tokens: int = 20) -> None:
    g = p.add_argument_group("sampler chain (defaults sample from the model's own distribution)")
    g.add_argument("--temperature", "-t", type=float, default=None, help="0 = greedy (default 1)")
    g.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens (default 0 = off)")
    g.add_argument("--top-p", type=float, default=None, help="nucleus: keep the smallest set with mass > p, in (0, 1] (default 1 = off)")
    g.add_argument("--min-p", type=float, default=None, help="drop tokens below min_p x the top probability (default 0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=None, help="> 0 (default 1 = off; transformers' penalty)")
    g.add_argument("--no-repeat-ngram-size", type=int, default=None, help="ban repeating any n-gram of this size (default 0 = off)")
    g.add_argument("--max-new-tokens", type=int, default=None, help=f"tokens to generate (default {max_new_tokens})")
    g.add_argument("--greedy", action="store_true", default=None, help="argmax decoding (same as --temperature 0)")
    g.add_argument("--order", default=None, choices=ORDERS, help="stage order: transformers' generate (default hf) or llama.cpp's (temperature last)")
    g.add_argument("--no-stop", action="store_true", default=None, help="do not stop at the end-of-sequence token")
    g.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    g.add_argument("--rng", default=None, choices=RNG_MODES, help="per-sample streams (default) or torch's global generator (matches generate)")
    g.add_argument("--chat", action="store_true", default=None, help="wrap the prompt in the model's chat template (default: raw text)")


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="run store file (default $TOKENDICE_DB or ~/.local/share/tokendice/tokendice.db)")


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags among `names` that were given (not None), by their API keyword."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def sampling_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler flags given, as SamplingParams keywords."""
    out = given(args, "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "no_repeat_ngram_size", "max_new_tokens", "order")
    if args.greedy:
        out["do_sample"] = False
    if args.no_stop:
        out["stop_at_eos"] = False
    return out


def random_keywords(args: argparse.Namespace) -> dict[str, Any]:
    return given(args, "seed", "rng", "chat")


def engine_from_args(args: argparse.Namespace) -> EngineSpec:
    """The EngineSpec the flags describe (an option the engine does not take is an error)."""
    options = given(args, *ENGINE_FLAGS)
    if args.engine == "openai" and args.chat:
        options["endpoint"] = "chat"  # the server applies its chat template
    return EngineSpec(args.engine or "hf", args.model, **options)


def engine_flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The engine flags given, by keyword (engine and model included): what a resume must check."""
    return given(args, "engine", "model", *ENGINE_FLAGS)


def show(result: Any, args: argparse.Namespace, **options: Any) -> int:
    """Print a command's result: its JSON with --json, else its terminal view (`options` go to the
    renderer) and, for a stored run, where it is. Returns the exit code, 0."""
    if getattr(args, "json", False):
        print(result.to_json())
        return 0
    from tokendice.render.terminal import make_console, print_result

    console = make_console()
    print_result(result, console, **options)
    if getattr(result, "run_id", None):
        console.print(f"[dim]stored as run {result.run_id} (tokendice runs show {result.run_id})[/]")
    return 0
