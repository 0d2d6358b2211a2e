"""tokendice audit: is this request reproducible here, and if not, where and why do runs fork?"""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

from tokendice.cli.common import add_model_args, add_sampling_args, add_store_args, engine_from_args, given, random_keywords, sampling_keywords, show
from tokendice.engines.spec import EngineSpec
from tokendice.errors import ParameterError

HELP = "run one request under a matrix of conditions (batch, dtype, threads, KV cache, attention, engines) and say what changes the output"
GROUPS_HELP = "baseline, batch, dtype, threads, kv_cache, attention, engines, or all (default all; the baseline always runs)"
SERVER_FLAGS = ("base_url", "api_key_env", "timeout", "max_retries", "concurrency")
"""With a white-box --engine, these describe an OpenAI-compatible server for the engines condition."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help=HELP, description=HELP)
    p.add_argument("prompt", nargs="?", help="the prompt text (or --prompts FILE)")
    p.add_argument("--repeats", "-r", type=int, default=None, help="runs per condition, or per prompt with --prompts (default 5)")
    p.add_argument("--conditions", "-c", default=None, metavar="LIST", help=f"comma-separated condition groups: {GROUPS_HELP}")
    p.add_argument("--batch-sizes", default=None, metavar="LIST", help="batch sizes of the batch condition (default 1,2,8,32)")
    p.add_argument("--deterministic", action="store_true", default=None, help="torch deterministic algorithms for every run")
    g = p.add_argument_group("agreement over a prompt set (Atil et al. 2024)")
    g.add_argument("--prompts", metavar="FILE", help="one prompt per line (or JSONL): report TARr@N and TARa@N over them")
    g.add_argument("--answer-regex", metavar="RE", help="extract each output's answer (first group, else the match) for TARa@N")
    g.add_argument("--batch-size", type=int, default=None, help="with --prompts: decode this many prompts together, left-padded (default 1)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice import api
    from tokendice.inputs import read_prompts

    if (args.prompt is None) == (args.prompts is None):
        raise ParameterError("give a prompt or --prompts FILE (one of the two)")
    if args.prompts is None:
        _only_with(args, "--prompts FILE", answer_regex="--answer-regex", batch_size="--batch-size")
    else:
        _only_with(args, "a prompt, not with --prompts", conditions="--conditions", batch_sizes="--batch-sizes")
    sizes = {"batch_sizes": _sizes(args.batch_sizes)} if args.batch_sizes is not None else {}
    engine, others = _engines(args)
    common: dict[str, Any] = {
        "engine": engine, "db": args.db, "progress": False if args.json else None,
        **given(args, "repeats", "deterministic"), **random_keywords(args), **sampling_keywords(args),
    }
    with _notes_on_stderr():
        if args.prompts is not None:
            result: Any = api.agreement(read_prompts(args.prompts), **given(args, "answer_regex", "batch_size"), **common)
        else:
            try:
                result = api.audit(args.prompt, **given(args, "conditions"), **sizes, **others, **common)
            except ParameterError as exc:
                if exc.param == "others":
                    raise ParameterError("--base-url is a server for the engines condition, which --conditions leaves out: add engines") from None
                raise
    return show(result, args, notes=False)  # the notes went to stderr as they came


def _only_with(args: argparse.Namespace, where: str, **flags: str) -> None:
    for name, flag in flags.items():
        if getattr(args, name) is not None:
            raise ParameterError(f"{flag} goes with {where}")


def _engines(args: argparse.Namespace) -> tuple[EngineSpec, dict[str, Any]]:
    """The baseline's EngineSpec, and `others` when server flags (--base-url, ...) come with a
    white-box engine: the server is then one of the engines condition's engines."""
    server = given(args, *SERVER_FLAGS)
    if (args.engine or "hf") == "openai" or not server:
        return engine_from_args(args), {}
    if "base_url" not in server:
        raise ParameterError(f"--{next(iter(server)).replace('_', '-')} describes a server: give its --base-url too")
    if args.chat:
        server["endpoint"] = "chat"  # the server applies its chat template
    baseline = argparse.Namespace(**{**vars(args), **{name: None for name in SERVER_FLAGS}})
    return engine_from_args(baseline), {"others": [EngineSpec("openai", **server)]}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise ParameterError(f"--batch-sizes must be comma-separated integers >= 1, got {text!r}")
    return sizes


@contextmanager
def _notes_on_stderr() -> Iterator[None]:
    """Show the API's busy-machine warning as one line on stderr, when it is raised (before the runs)."""
    from tokendice.errors import BusyMachineWarning

    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, BusyMachineWarning):
            print(f"tokendice: note: {str(message).replace('threads=1', '--threads 1')}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", BusyMachineWarning)
        warnings.showwarning = show
        yield
