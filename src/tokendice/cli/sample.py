"""tokendice sample: draw many completions, store them, and analyse their distribution."""

from __future__ import annotations

import argparse
import json
import sys

from tokendice.cli._legacy import (
    add_model_args,
    add_sampling_args,
    add_store_args,
    check_prompt,
    engine_options,
    open_store,
    params_from_args,
    progress_enabled,
    read_prompts_file,
    rng_from_args,
)
from tokendice.errors import EngineError, ParameterError

HELP = "sample N completions (independent or branching), store them, and compare frequencies with exact probabilities"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help=HELP, description=HELP)
    p.add_argument("prompt", nargs="?", help="the prompt text (or use --prompts FILE)")
    p.add_argument("-n", type=int, default=100, help="samples per prompt (default 100)")
    p.add_argument("--method", default="independent", choices=["independent", "branching"], help="independent streams per sample (default) or the branching sampler (same distribution, cost grows with distinct prefixes)")
    p.add_argument("--prompts", metavar="FILE", help="many prompts: one a line, or JSONL with a \"prompt\" field")
    p.add_argument("--batch-size", type=int, default=250, help="rows decoded together and committed per transaction (default 250)")
    p.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted run: same samples as an uninterrupted run")
    p.add_argument("--at-prefix", metavar="TEXT", help="predicted vs observed next-token frequencies right after this generated text")
    p.add_argument("--exact", action="store_true", help="also enumerate exactly and test the samples against it")
    p.add_argument("--mass", type=float, default=0.99, help="with --exact: probability mass to enumerate (default 0.99)")
    p.add_argument("--max-nodes", type=int, default=2000, help="with --exact: prefixes to expand at most (default 2000)")
    p.add_argument("--rows", type=int, default=15, help="distinct completions shown (default 15)")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    add_sampling_args(p)
    add_model_args(p)
    add_store_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tokendice.api import get_engine
    from tokendice.cli.progress import progress_bar
    from tokendice.experiments.distribution.sample import SampleSpec, fill_sample_run, load_sample_spec, start_sample_run

    store = open_store(args)
    if args.resume:
        record = store.get_run(args.resume)
        spec = load_sample_spec(store, record.id)
        if record.engine == "openai":  # the server named in the manifest (or --base-url), never a stored key
            from tokendice.experiments.trace.blackbox import resume_options

            options = resume_options(record.manifest.get("engine") or {}, args.base_url, args.api_key_env)
        else:
            options = engine_options(argparse.Namespace(**{**vars(args), "engine": record.engine}))
        engine = get_engine(record.engine, record.model, **options)
        _check_white_box_options(engine, args)
        run_id = record.id
    else:
        prompts = read_prompts_file(args.prompts) if args.prompts else [args.prompt or ""]
        if args.prompts and args.prompt:
            raise ParameterError("give a prompt or --prompts FILE, not both")
        for prompt in prompts:
            check_prompt(prompt)
        rng = rng_from_args(args)
        spec = SampleSpec(tuple(prompts), params_from_args(args), args.n, rng.seed, rng.mode, args.method, args.chat, args.batch_size)
        engine = get_engine(args.engine, args.model, **engine_options(args))
        _check_white_box_options(engine, args)
        run_id = start_sample_run(store, engine, spec)
    total = spec.n * len(spec.prompts)
    with progress_bar(f"sampling ({spec.method})", total, progress_enabled(args)) as advance:
        try:
            fill_sample_run(store, engine, run_id, progress=advance)
        except EngineError as exc:  # e.g. the server went away: say what is kept and how to go on
            stored = store.count_samples(run_id)
            raise type(exc)(f"{exc}; {stored} of {total} samples are stored: continue with tokendice sample --resume {run_id}") from exc
    report, analyses = analyse_run(store, engine, run_id, spec, args)
    server = store.get_result(run_id, "server")
    if server is not None:
        from tokendice.experiments.trace.blackbox import consistency_warning

        warning = consistency_warning(server)
        report["server"] = server
        report["warnings"] = [warning] if warning else []
        if warning:
            print(f"tokendice: warning: {warning}", file=sys.stderr)
    store.save_result(run_id, "analysis", report)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print(report, analyses, store, run_id, spec, args)
    return 0


def _check_white_box_options(engine, args: argparse.Namespace) -> None:
    from tokendice.engines.base import require_logits

    if args.exact:
        require_logits(engine, "--exact (an exact enumeration)")
    if args.at_prefix is not None:
        require_logits(engine, "--at-prefix (predicted next-token probabilities)")


def analyse_run(store, engine, run_id: str, spec, args: argparse.Namespace) -> tuple[dict, list]:
    """The run's analysis as JSON-able data, and the SampleAnalysis objects behind it."""
    from tokendice.analysis import tarr_at_n
    from tokendice.experiments.decoding.enumerate import enumerate_completions, next_token_distribution
    from tokendice.experiments.decoding.prompting import encode_prompt
    from tokendice.experiments.distribution.analysis import analyze_samples, check_prefix

    per_prompt, analyses, outputs = [], [], []
    for index, prompt in enumerate(spec.prompts):
        samples = store.samples(run_id, prompt_index=index)
        outputs.append([s.text for s in samples])
        white_box = engine.kind.white_box
        prompt_ids = encode_prompt(engine.tokenizer, prompt, spec.chat) if white_box else []
        exact = None
        if args.exact:
            exact = enumerate_completions(engine, prompt_ids, spec.params, mass=args.mass, max_nodes=args.max_nodes)
        # A server's greedy samples are not known to be deterministic: no p = 1 for them.
        analysis = analyze_samples(samples, exact, greedy=spec.params.greedy and white_box)
        if args.at_prefix is not None:
            analysis.at_prefix = check_prefix(
                samples,
                args.at_prefix,
                lambda prefix, ids=prompt_ids: next_token_distribution(engine, ids, prefix, spec.params),
                lambda t: engine.tokenizer.decode([t]),
                engine.tokenizer.eos_token_ids,
            )
        data = analysis.to_dict()
        data["prompt"] = prompt
        per_prompt.append(data)
        analyses.append(analysis)
    report = {
        "run_id": run_id,
        "method": spec.method,
        "params": spec.params.to_dict(),
        "seed": spec.seed,
        "rng": spec.rng,
        "n_per_prompt": spec.n,
        "tarr_at_n": tarr_at_n(outputs),
        "prompts": per_prompt,
    }
    return report, analyses


def _print(report: dict, analyses: list, store, run_id: str, spec, args: argparse.Namespace) -> None:
    from tokendice.render.sample_terminal import analysis_renderable
    from tokendice.render.terminal import make_console

    console = make_console()
    for prompt, analysis in zip(spec.prompts, analyses):
        console.print(analysis_renderable(analysis, f"prompt: {prompt!r} · {spec.method} sampling · seed {spec.seed}", rows=args.rows))
    if len(spec.prompts) > 1:
        console.print(f"TARr@{spec.n} over {len(spec.prompts)} prompts = {report['tarr_at_n']:.3f}")
    console.print(f"run {run_id} stored in {store.path}")
