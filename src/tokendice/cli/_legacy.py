"""Transitional: the flag helpers of commands not yet rewritten over the API (removed with them)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args  # noqa: F401
from tokendice.inputs import check_prompt as _check
from tokendice.inputs import read_prompts as read_prompts_file  # noqa: F401
from tokendice.params import RandomSpec, SamplingParams


def params_from_args(args: argparse.Namespace) -> SamplingParams:
    v = lambda name, default: default if getattr(args, name, None) is None else getattr(args, name)  # noqa: E731
    return SamplingParams(
        temperature=v("temperature", 1.0), top_k=v("top_k", 0), top_p=v("top_p", 1.0), min_p=v("min_p", 0.0),
        repetition_penalty=v("repetition_penalty", 1.0), no_repeat_ngram_size=v("no_repeat_ngram_size", 0),
        max_new_tokens=v("max_new_tokens", getattr(args, "_max_new_tokens_default", 20)), do_sample=not args.greedy,
        order=v("order", "hf"), stop_at_eos=not args.no_stop,
    )


def rng_from_args(args: argparse.Namespace) -> RandomSpec:
    return RandomSpec(args.seed or 0, args.rng or "per-sample")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    engine = args.engine or "hf"
    if engine == "hf":
        return {k: v for k, v in {"dtype": args.dtype, "threads": args.threads, "trust_remote_code": args.trust_remote_code}.items() if v is not None}
    if engine == "llamacpp":
        return {"threads": args.threads} if args.threads else {}
    options = {k: getattr(args, k) for k in ("base_url", "api_key_env", "concurrency", "timeout", "max_retries") if getattr(args, k, None) is not None}
    if getattr(args, "chat", False):
        options["endpoint"] = "chat"
    return options


def load_engine_from_args(args: argparse.Namespace) -> Any:
    from tokendice.api._legacy import get_engine

    return get_engine(args.engine or "hf", args.model, **engine_options(args))


def check_prompt(prompt: str) -> None:
    _check(prompt)


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "json", False) and sys.stderr.isatty()


def open_store(args: argparse.Namespace) -> Any:
    from tokendice.store import Store

    return Store(getattr(args, "db", None))
