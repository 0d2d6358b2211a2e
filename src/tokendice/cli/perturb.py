"""tokendice perturb: tweak the prompt slightly and measure how far the output moves."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from tokendice.cli._legacy import (
    add_model_args,
    add_sampling_args,
    add_store_args,
    check_prompt,
    engine_options,
    params_from_args,
    progress_enabled,
    read_prompts_file,
)
from tokendice.errors import EngineError, ParameterError

HELP = "measure how far small, meaning-preserving prompt edits (whitespace, case, punctuation, quotes, templates) move the output"
DESCRIPTION = HELP + (
    ". For every variant vs the original: first-step JS divergence and top-1 change, greedy output, total variation"
    " of the completion distribution (exact enumeration where it reaches --mass, else --samples draws of the original"
    " scored exactly under each variant), and the POSIX index over the set. With the defaults (8 new tokens,"
    " 200 samples, enumeration to mass 0.95 within 300 prefixes) the 12 default variants of one prompt take about"
    " 1.5 minutes on a 2-core CPU with the embedded model."
)
FIXED_BY_RUN = (
    "prompt", "prompts", "list", "variants", "variants_only", "kinds", "samples", "mass", "max_nodes", "no_distribution",
    "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "no_repeat_ngram_size", "max_new_tokens", "greedy",
    "order", "no_stop", "seed", "chat", "no_save",
)
"""What a stored run fixes: --resume takes all of it from the run, so such a flag is refused rather than ignored."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("perturb", help=HELP, description=DESCRIPTION)
    p.add_argument("prompt", nargs="?", help="the prompt text (or --prompts FILE)")
    p.add_argument("--prompts", metavar="FILE", help="a prompt suite: one prompt a line, or JSONL with a \"prompt\" field; summarised per variant kind")
    g = p.add_argument_group("variants")
    g.add_argument("--list", action="store_true", help="show the variants (name, kind, resulting prompt) and exit; loads no model")
    g.add_argument("--variants", metavar="FILE", help="your own variants: one a line (a prompt, or a template with {p} for the original; \\n for a newline), or JSONL {\"name\", \"prompt\", \"chat\"}")
    g.add_argument("--variants-only", metavar="NAMES", help="comma-separated variant names to run (compose with '+', e.g. case.lower+punct.question)")
    g.add_argument("--kinds", metavar="KINDS", help="comma-separated kinds to keep: whitespace, case, punct, quotes, sep, template, para, user")
    g = p.add_argument_group("completion distributions")
    g.add_argument("--samples", "-n", type=int, default=200, help="samples of the original when enumeration does not reach --mass (default 200)")
    g.add_argument("--mass", type=float, default=0.95, help="enumeration target: exact TV when the original's completions reach this mass (default 0.95)")
    g.add_argument("--max-nodes", type=int, default=300, help="prefixes the enumeration may expand (default 300)")
    g.add_argument("--no-distribution", action="store_true", help="skip the completion distributions (first step, greedy and POSIX only: much faster)")
    p.add_argument("--details", action="store_true", help="with --prompts: show every prompt's full table, not only the summary")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON (the POSIX matrix in full)")
    p.add_argument("--no-save", action="store_true", help="do not store the report as a run")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted suite: measure the prompts its stored report lacks, with the run's variants and settings, into the same run")
    add_sampling_args(p, max_new_tokens=8)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice.experiments.perturb.variants import build_variant_sets, parse_names, read_variants_file

    if args.resume is not None:
        return _resume(args)
    if (args.prompt is None) == (args.prompts is None):
        raise ParameterError("give a prompt or --prompts FILE (one of the two)")
    prompts = read_prompts_file(args.prompts) if args.prompts else [args.prompt]
    for prompt in prompts:
        check_prompt(prompt)
    user = read_variants_file(args.variants) if args.variants else []
    kinds = parse_names(args.kinds) if args.kinds is not None else None
    vsets = build_variant_sets(prompts, args.chat, parse_names(args.variants_only), kinds, user)
    if args.list:
        if args.json:
            print(json.dumps([v.to_dict() for v in vsets], indent=2, ensure_ascii=False))
        else:
            from tokendice.render.perturb_terminal import print_variant_list

            print_variant_list(vsets)
        return 0
    return _measure(args, vsets)


def _measure(args: argparse.Namespace, vsets: list) -> int:
    from tokendice.api import get_engine
    from tokendice.experiments.perturb.perturb import PerturbSettings
    from tokendice.experiments.perturb.suite import start_perturb_run
    from tokendice.store import Store

    settings = PerturbSettings(params_from_args(args), args.seed, args.samples, args.mass, args.max_nodes, not args.no_distribution)
    store = None if args.no_save else Store(args.db)
    try:
        engine = get_engine(args.engine, args.model, **engine_options(args))
        report = start_perturb_run(engine, vsets, settings, store, args.chat)
        _fill(args, engine, vsets, report, store)
    finally:
        if store is not None:
            store.close()
    return _show(args, report)


def _resume(args: argparse.Namespace) -> int:
    """`--resume RUN_ID`: the run's engine, model, variants and settings; only the missing prompts are measured."""
    from tokendice.api import get_engine
    from tokendice.experiments.perturb.suite import load_perturb_run, perturb_record
    from tokendice.store import Store

    _check_resume_flags(args)
    with Store(args.db) as store:
        record = perturb_record(store, args.resume)
        engine = get_engine(record.engine, record.model, **_resume_engine_options(args, record))
        report, vsets = load_perturb_run(store, record.id, engine)
        _fill(args, engine, vsets, report, store)
    return _show(args, report)


def _fill(args: argparse.Namespace, engine, vsets: list, report, store) -> None:
    """Measure what `report` lacks; on an interruption, say what is kept and the command that goes on."""
    from tokendice.experiments.perturb.perturb import UNITS_PER_PROMPT
    from tokendice.experiments.perturb.suite import fill_perturb_run, total_units

    try:
        with progress_bar(progress_enabled(args), total_units(vsets), UNITS_PER_PROMPT * len(report.prompts)) as progress:
            fill_perturb_run(engine, vsets, report, progress, store)
    except KeyboardInterrupt:
        if report.run_id is not None:
            print(f"tokendice: {_kept(args, report, vsets)}", file=sys.stderr)
        raise
    except EngineError as exc:  # e.g. out of memory on a long prompt
        if report.run_id is None:
            raise
        raise type(exc)(f"{exc}; {_kept(args, report, vsets)}") from exc


def _kept(args: argparse.Namespace, report, vsets: list) -> str:
    command = f"tokendice perturb --resume {report.run_id}" + (f" --db {shlex.quote(args.db)}" if args.db else "")
    return f"{len(report.prompts)} of {len(vsets)} prompts are stored in run {report.run_id}: continue with {command}"


def _show(args: argparse.Namespace, report) -> int:
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    from tokendice.render.perturb_terminal import print_report

    print_report(report, details=args.details)
    if report.run_id:
        print(f"stored as run {report.run_id}")
    return 0


def _check_resume_flags(args: argparse.Namespace) -> None:
    """Refuse, before loading anything, a flag that would change what the stored run measures."""
    defaults = _defaults(FIXED_BY_RUN)
    given = [_flag(dest) for dest in FIXED_BY_RUN if getattr(args, dest) != defaults[dest]]
    if given:
        raise ParameterError(f"--resume takes the prompts, variants, settings and sampler from the stored run: drop {', '.join(given)}")


def _resume_engine_options(args: argparse.Namespace, record) -> dict[str, Any]:
    """Options for the run's engine with the run's dtype (which changes the logits); --engine,
    --model or --dtype naming something else than the run used is refused."""
    defaults = _defaults(("engine", "model", "dtype"))
    used = {"engine": record.engine, "model": record.model, "dtype": (record.manifest.get("engine") or {}).get("dtype", defaults["dtype"])}
    clashes = [f"{_flag(dest)} {getattr(args, dest)} (the run used {value})" for dest, value in used.items() if getattr(args, dest) not in (defaults[dest], value)]
    if clashes:
        raise ParameterError(f"--resume measures with the run's engine and model: drop {', '.join(clashes)}")
    return engine_options(argparse.Namespace(**{**vars(args), **used}))


def _defaults(dests: tuple[str, ...]) -> dict[str, Any]:
    """The parser's defaults, from a parser built afresh: a value that differs was given on the command line."""
    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    parser = sub.choices["perturb"]
    return {dest: parser.get_default(dest) for dest in dests}


def _flag(dest: str) -> str:
    return "a prompt" if dest == "prompt" else "--" + dest.replace("_", "-")


@contextmanager
def progress_bar(enabled: bool, total: int, done: int = 0) -> Iterator[Callable[[int, str], None] | None]:
    """A rich progress bar on stderr, advanced in work units with a label of the current stage;
    a resumed suite starts at the `done` units of its stored prompts, so its time left stays honest."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("loading the model", total=total, completed=done)

        def update(units: int, label: str) -> None:
            bar.update(task, advance=units, description=label)

        yield update
