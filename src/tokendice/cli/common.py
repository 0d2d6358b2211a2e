"""Arguments shared by commands: model/engine selection and the sampler flags."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tokendice.params import RNG_MODES, RandomSpec, SamplingParams


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and engine")
    g.add_argument("--model", "-m", default=None, help="model: the embedded 'smollm2-135m' (default), a transformers id or directory, or a GGUF path for --engine llamacpp")
    g.add_argument("--engine", "-e", default="hf", help="hf (transformers, default), llamacpp, openai")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weights and activations dtype (hf engine)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads: torch's for hf (default: the cores other processes leave idle while the model loads), llama.cpp's for llamacpp (default half)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code to run (off by default)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (--engine openai)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key (--engine openai; the key is never stored or printed)")
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (--engine openai, default 8)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one answer (--engine openai, default 60)")
    g.add_argument("--max-retries", type=int, default=4, help="retries on 429, 5xx and connection errors, with backoff (--engine openai, default 4)")


def add_sampling_args(p: argparse.ArgumentParser, max_new_tokens: int = 20) -> None:
    g = p.add_argument_group("sampler chain (defaults sample from the model's own distribution)")
    g.add_argument("--temperature", "-t", type=float, default=1.0, help="0 = greedy (default 1)")
    g.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = off)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus: keep the smallest set with mass > p, in (0, 1] (1 = off)")
    g.add_argument("--min-p", type=float, default=0.0, help="drop tokens below min_p x the top probability (0 = off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="> 0; 1 = off (transformers' penalty)")
    g.add_argument("--no-repeat-ngram-size", type=int, default=0, help="ban repeating any n-gram of this size (0 = off)")
    g.add_argument("--max-new-tokens", "-n-tokens", type=int, default=max_new_tokens, help=f"tokens to generate (default {max_new_tokens})")
    g.add_argument("--greedy", action="store_true", help="argmax decoding (same as --temperature 0)")
    g.add_argument("--order", default="hf", choices=["hf", "llamacpp"], help="stage order: transformers' generate (default) or llama.cpp's (temperature last)")
    g.add_argument("--no-stop", action="store_true", help="do not stop at the end-of-sequence token")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--rng", default="per-sample", choices=list(RNG_MODES), help="per-sample streams (default) or torch's global generator (matches generate)")
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template (default: raw text)")


def params_from_args(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size,
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        order=args.order,
        stop_at_eos=not args.no_stop,
    )


def rng_from_args(args: argparse.Namespace) -> RandomSpec:
    return RandomSpec(args.seed, args.rng)


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options for `load_engine`, only those the chosen engine understands."""
    if args.engine == "hf":
        return {"dtype": args.dtype, "threads": args.threads, "trust_remote_code": args.trust_remote_code}
    if args.engine == "llamacpp":
        return {"n_threads": args.threads}
    if args.engine == "openai":
        options = {"base_url": args.base_url, "api_key_env": args.api_key_env}
        for name in ("concurrency", "timeout", "max_retries"):
            if getattr(args, name, None) is not None:
                options[name] = getattr(args, name)
        if getattr(args, "chat", False):
            options["endpoint"] = "chat"  # the server applies its chat template
        return options
    return {}


def load_engine_from_args(args: argparse.Namespace):
    from tokendice.api import get_engine

    return get_engine(args.engine, args.model, **engine_options(args))


def check_prompt(prompt: str) -> None:
    from tokendice.errors import ParameterError

    if not prompt or not prompt.strip():
        raise ParameterError("prompt must be a non-empty string")


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "json", False) and sys.stderr.isatty()


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="run store file (default $TOKENDICE_DB or ~/.local/share/tokendice/tokendice.db)")


def open_store(args: argparse.Namespace):
    from tokendice.store import Store

    return Store(getattr(args, "db", None))


def read_prompts_file(path: str) -> list[str]:
    """One prompt a line, or JSONL objects with a "prompt" field; blank lines are skipped."""
    import json

    from tokendice.errors import ParameterError

    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except OSError as exc:
        raise ParameterError(f"cannot read prompts file {path}: {exc.strerror}") from exc
    prompts = []
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
                prompts.append(str(item["prompt"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ParameterError(f"{path}:{number}: expected a JSON object with a \"prompt\" field") from exc
        else:
            prompts.append(line)
    if not prompts:
        raise ParameterError(f"{path} holds no prompts")
    return prompts
