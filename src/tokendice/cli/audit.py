"""tokendice audit: is this request reproducible here, and if not, where and why do runs fork?"""

from __future__ import annotations

import argparse
import os
import re
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tokendice.cli._legacy import add_model_args, add_sampling_args, params_from_args, progress_enabled, rng_from_args
from tokendice.errors import ParameterError

HELP = "run one request under a matrix of conditions (batch, dtype, threads, KV cache, attention, engines) and say what changes the output"
GROUPS_HELP = "baseline, batch, dtype, threads, kv_cache, attention, engines, or all (default all; the baseline always runs)"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help=HELP, description=HELP)
    p.add_argument("prompt", nargs="?", help="the prompt text (or --prompts FILE)")
    p.add_argument("--repeats", "-r", type=int, default=5, help="runs per condition, or per prompt with --prompts (default 5)")
    p.add_argument("--conditions", "-c", default=None, metavar="LIST", help=f"comma-separated condition groups: {GROUPS_HELP}")
    p.add_argument("--batch-sizes", default="1,2,8,32", metavar="LIST", help="batch sizes of the batch condition (default 1,2,8,32)")
    p.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms and a fixed thread count for every run")
    g = p.add_argument_group("agreement over a prompt set (Atil et al. 2024)")
    g.add_argument("--prompts", metavar="FILE", help="one prompt per line (or JSONL): report TARr@N and TARa@N over them")
    g.add_argument("--answer-regex", metavar="RE", help="extract each output's answer (first group, else the match) for TARa@N")
    g.add_argument("--batch-size", type=int, default=1, help="with --prompts: decode this many prompts together, left-padded (default 1)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--db", default=None, help="run store (default $TOKENDICE_DB or the user data directory)")
    add_sampling_args(p)
    add_model_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    rng = rng_from_args(args)
    if args.repeats < 1:
        raise ParameterError(f"repeats must be >= 1, got {args.repeats}")
    if (args.prompt is None) == (args.prompts is None):
        raise ParameterError("give a prompt or --prompts FILE (one of the two)")
    if args.prompts is None and args.answer_regex is not None:
        raise ParameterError("--answer-regex goes with --prompts FILE")
    if args.batch_size < 1:
        raise ParameterError(f"batch size must be >= 1, got {args.batch_size}")
    from tokendice.experiments.audit.controls import parse_groups

    parse_groups(args.conditions)
    sizes = _sizes(args.batch_sizes)
    if args.prompts is not None and not os.path.isfile(os.path.expanduser(args.prompts)):
        raise ParameterError(f"prompts file not found: {args.prompts}")
    if args.answer_regex is not None:
        try:
            re.compile(args.answer_regex)
        except re.error as exc:
            raise ParameterError(f"answer regex {args.answer_regex!r} is not a valid regular expression: {exc}") from exc
    from tokendice import api

    common = dict(
        model=args.model, engine=args.engine, repeats=args.repeats, seed=rng.seed, rng=rng.mode,
        deterministic=args.deterministic, dtype=args.dtype, threads=args.threads, chat=args.chat, params=params,
        engine_options=_engine_options(args), db=args.db,
    )
    if args.threads is None:
        _warn_if_busy()
    with progress_bar(progress_enabled(args)) as progress:
        if args.prompts is not None:
            from tokendice.experiments.audit.agreement import read_prompts

            report = api.agreement(read_prompts(args.prompts), answer_regex=args.answer_regex,
                                   batch_size=args.batch_size, progress=progress, **common)
        else:
            report = api.audit(args.prompt, conditions=args.conditions, batch_sizes=sizes,
                               base_url=args.base_url, progress=progress, **common)
    if args.json:
        import json

        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    from tokendice.render.audit_terminal import print_agreement, print_audit

    (print_agreement if args.prompts is not None else print_audit)(report)  # type: ignore[operator]
    print(f"stored as run {report.run_id}")
    return 0


def _warn_if_busy() -> None:
    """All-thread runs crawl when other processes hold the cores; say so, and what helps."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return
    if cores > 1 and load > cores:
        print(f"tokendice: note: this machine is busy (load {load:.1f} on {cores} cores): runs on all threads will be slow; "
              "--threads 1 makes the audit several times faster", file=sys.stderr)


def _engine_options(args: argparse.Namespace) -> dict:
    if args.engine == "hf":
        return {"trust_remote_code": True} if args.trust_remote_code else {}
    if args.engine == "openai":
        return {"base_url": args.base_url, "api_key_env": args.api_key_env}
    return {}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise ParameterError(f"--batch-sizes must be comma-separated integers >= 1, got {text!r}")
    return sizes


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on stderr, or None when output is JSON or not a terminal."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("loading the model", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        yield update
