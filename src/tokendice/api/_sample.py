"""`sample`, `enumerate_completions` and resuming sample runs: the distribution of completions,
sampled and exact."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any

from tokendice.api import _common
from tokendice.api._common import EngineArg, check_context, check_progress, engine_spec, preflight, prompts_of, sampler, store_context
from tokendice.api._registry import loads, resumes
from tokendice.api._resume import Difference, differ, refuse, resumed_engine
from tokendice.engines.base import Engine, require_logits
from tokendice.engines.blackbox import check_blackbox_request
from tokendice.engines.spec import ENGINE_KINDS, EngineSpec
from tokendice.errors import EngineError, ParameterError, RunInterrupted, StoreError, suggest
from tokendice.experiments.decoding.enumerate import Enumeration
from tokendice.experiments.decoding.enumerate import enumerate_completions as best_first
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.distribution.run import AnalysisOptions, SampleRun, summarise
from tokendice.experiments.distribution.sample import MemorySink, SampleSpec, StoreSink, draw_samples, load_sample_spec, start_sample_run
from tokendice.inputs import check_prompt
from tokendice.params import SAMPLING_FIELDS, SamplingParams, require_bool, require_int, require_number
from tokendice.render.progress import ProgressOption, progress_bar
from tokendice.store import Store
from tokendice.store.records import RunRecord

ENUMERATE_MAX_NEW_TOKENS = 10
"""enumerate's default completion length: the tree grows fast with it."""


def sample(
    prompt: str | list[str],
    n: int = 100,
    *,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    seed: int = 0,
    rng: str = "per-sample",
    method: str = "independent",
    batch_size: int = 250,
    chat: bool = False,
    at_prefix: str | None = None,
    exact: bool = False,
    mass: float = 0.99,
    max_nodes: int = 2000,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> SampleRun:
    """Draw `n` completions of each prompt and analyse their distribution: a `SampleRun`.

    Per prompt: the distinct completions with counts, 95% Wilson intervals and exact
    probabilities under the sampling distribution, a goodness-of-fit test of the counts
    against them, and where samples spread. `method` "independent" (sample i has its own
    random stream, the same alone, in any batch or after a resume) or "branching" (the
    same distribution; cost grows with distinct prefixes, not with n). `at_prefix`: the
    predicted vs observed next-token frequencies right after that generated text;
    `exact`: test against an exact enumeration (`mass`, `max_nodes`) instead of the
    recorded probabilities. `sampling` takes the SamplingParams keywords (temperature,
    top_k, top_p, ...). With `save`, every sample and the analysis are stored as a run
    (`run.run_id`; `load_run` reads it back, `resume` finishes it if interrupted);
    `save=False` writes nothing and keeps the samples in memory (`run.samples`).
    """
    chosen = sampler(sample, params, sampling)
    spec = SampleSpec(prompts_of(prompt), chosen, n, seed, rng, method, chat, batch_size)
    options = _analysis_options(AnalysisOptions(), at_prefix=at_prefix, exact=exact, mass=mass, max_nodes=max_nodes)
    check_progress(progress)
    target = engine_spec(engine, model)
    _check_engine_can(target, spec, options)
    with store_context(save, db) as store:
        preflight(target, spec.prompts, spec.chat, chosen.max_new_tokens)
        loaded = _common.load(target)
        _check_engine_can(loaded, spec, options)
        _check_fits(loaded, spec)
        if store is None:
            sink = MemorySink()
            with progress_bar(progress, spec.n * len(spec.prompts), f"sampling ({spec.method})", "samples") as advance:
                server = draw_samples(loaded, spec, sink, advance)
            return summarise(spec, sink.ordered(), engine_name=loaded.name, model=loaded.model_id,
                             white_box=loaded.kind.white_box, options=options, engine=loaded, server=server)  # fmt: skip
        run_id = start_sample_run(store, loaded, spec, options.to_manifest())
        return _fill(store, loaded, run_id, spec, options, progress)


def enumerate_completions(
    prompt: str,
    *,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    mass: float = 0.99,
    max_nodes: int = 2000,
    min_prob: float = 1e-7,
    chat: bool = False,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> Enumeration:
    """Every completion with its exact probability under the sampling distribution, best first,
    until the completions found hold `mass` or `max_nodes` prefixes were expanded: an
    `Enumeration` (found, frontier and pruned mass say where the rest is). Prefixes less
    likely than `min_prob` are pruned. `max_new_tokens` defaults to 10 here. Needs a
    white-box engine (next-token logits). With `save`, stored as a run of kind 'enumerate'.
    """
    if params is None and "max_new_tokens" not in sampling:
        sampling = {**sampling, "max_new_tokens": ENUMERATE_MAX_NEW_TOKENS}
    chosen = sampler(enumerate_completions, params, sampling)
    check_prompt(prompt)
    require_number("mass", mass, 0.0, 1.0, low_open=True)
    require_int("max_nodes", max_nodes, 1)
    require_number("min_prob", min_prob, 0.0, 1.0, low_open=True)
    require_bool("chat", chat)
    check_progress(progress)
    target = engine_spec(engine, model)
    what = "exact enumeration (every completion with its probability)"
    require_logits(_engine_like(target), what)
    with store_context(save, db) as store:
        preflight(target, [prompt], chat, chosen.max_new_tokens)
        loaded = _common.load(target)
        require_logits(loaded, what)
        prompt_ids = encode_prompt(loaded.tokenizer, prompt, chat)
        check_context(loaded, [prompt_ids], chosen.max_new_tokens)
        run_id = None
        if store is not None:
            extra = {"enumerate": {"prompt": prompt, "chat": chat, "mass": mass, "max_nodes": max_nodes, "min_prob": min_prob}}
            run_id = store.start_run("enumerate", prompt, loaded.describe(), chosen.to_dict(), extra)
        recording = store.recording(run_id) if store is not None and run_id is not None else nullcontext()
        with recording, progress_bar(progress, max_nodes, "enumerating", "prefixes") as advance:
            result = best_first(loaded, prompt_ids, chosen, mass=mass, max_nodes=max_nodes, min_prob=min_prob, progress=advance)
            result.prompt, result.params, result.engine, result.model = prompt, chosen.to_dict(), loaded.name, loaded.model_id
            if store is not None and run_id is not None:
                result.run_id = run_id
                store.save_result(run_id, "enumeration", result.to_dict())
        return result


# -- resuming a sample run -------------------------------------------------------------------

SPEC_SETTINGS = ("prompt", "n", "seed", "rng", "method", "batch_size", "chat")
ANALYSIS_SETTINGS = ("at_prefix", "exact", "mass", "max_nodes")
ENGINE_OPTIONS = tuple(sorted({o.name for kind in ENGINE_KINDS.values() for o in kind.options}))


@resumes("sample")
def resume_sample(run_id: str, *, db: str | None = None, progress: ProgressOption = None, **settings: Any) -> SampleRun:
    """Finish an interrupted sample run (`td.resume(run_id)`): the samples not stored yet,
    with the run's own settings, then the analysis of all of them.

    Every setting that decides the samples (engine, model, dtype, threads, attention,
    kv_cache, the sampler, seed, rng, method, batch_size, chat, n, the prompts) comes from
    the run's manifest; one given here that differs is a ParameterError naming it and both
    values. Transport settings (timeout, max_retries, concurrency, base_url, api_key_env)
    and the analysis (at_prefix, exact, mass, max_nodes) may be given anew and apply.
    """
    check_progress(progress)
    allowed = ("engine", "model", "params", *SPEC_SETTINGS, *ANALYSIS_SETTINGS, *SAMPLING_FIELDS, *ENGINE_OPTIONS)
    for name in settings:
        if name not in allowed:
            raise ParameterError(f"resume() of a sample run got an unexpected keyword {name!r}{suggest(name, allowed)}", param=name)
    settings = {k: v for k, v in settings.items() if v is not None or k == "at_prefix"}  # None: not given
    with Store(db) as store:
        record = store.get_run(run_id)
        if record.status == "running":
            raise StoreError(f"run {record.id} is still running in another process: let it finish, or stop it, before resuming it")
        spec = load_sample_spec(store, record.id)
        recorded = AnalysisOptions.from_manifest(record.manifest.get("analysis"))
        options = _analysis_options(recorded, **{k: settings[k] for k in ANALYSIS_SETTINGS if k in settings})
        engine_options = {k: settings[k] for k in ENGINE_OPTIONS if k in settings}
        target, engine_differences = resumed_engine(record, settings.get("engine"), settings.get("model"), **engine_options)
        refuse(record.id, _spec_differences(spec, settings) + engine_differences)
        _check_engine_can(target, spec, options)
        if spec.rng == "torch" and 0 < record.n_samples < spec.n * len(spec.prompts):
            raise ParameterError("a run with rng='torch' cannot be resumed identically (its draws depend on what ran before)", param="rng")
        loaded = _common.load(target)
        if (loaded.name, loaded.model_id) != (record.engine, record.model):
            raise ParameterError(f"run {record.id} was made with {record.engine}/{record.model}, not {loaded.name}/{loaded.model_id}", param="engine")
        _check_fits(loaded, spec)
        return _fill(store, loaded, record.id, spec, options, progress)


def _spec_differences(spec: SampleSpec, settings: dict[str, Any]) -> list[Difference]:
    """The sample settings given that differ from the run's."""
    out = []
    if "prompt" in settings and prompts_of(settings["prompt"]) != spec.prompts:
        out.append(differ("prompt", settings["prompt"], list(spec.prompts)))
    for name in SPEC_SETTINGS[1:]:
        if name in settings and _unequal(settings[name], getattr(spec, name)):
            out.append(differ(name, settings[name], getattr(spec, name)))
    params = settings.get("params")
    if params is not None:
        if not isinstance(params, SamplingParams):
            raise ParameterError(f"params must be a SamplingParams, got {type(params).__name__}", param="params")
        out += [differ(name, getattr(params, name), getattr(spec.params, name))
                for name in SAMPLING_FIELDS if _unequal(getattr(params, name), getattr(spec.params, name))]
    out += [differ(name, settings[name], getattr(spec.params, name))
            for name in SAMPLING_FIELDS if name in settings and _unequal(settings[name], getattr(spec.params, name))]
    return out


def _unequal(given: Any, used: Any) -> bool:
    return given != used or (type(given) is bool) != (type(used) is bool)


# -- shared steps ----------------------------------------------------------------------------


def _analysis_options(base: AnalysisOptions, **given: Any) -> AnalysisOptions:
    values = {**base.to_manifest(), **given}
    at_prefix = values["at_prefix"]
    if at_prefix is not None and (not isinstance(at_prefix, str) or not at_prefix):
        raise ParameterError(f"at_prefix must be None or a non-empty string, got {at_prefix!r}", param="at_prefix")
    require_bool("exact", values["exact"])
    require_number("mass", values["mass"], 0.0, 1.0, low_open=True)
    require_int("max_nodes", values["max_nodes"], 1)
    return AnalysisOptions(**values)


def _engine_like(target: EngineSpec | Engine) -> Any:
    """Name, kind and endpoint of an engine, loaded or not (for the checks before loading)."""
    if isinstance(target, EngineSpec):
        return SimpleNamespace(name=target.engine, kind=target.kind, endpoint=target.get("endpoint") if target.engine == "openai" else None)
    return target


def _check_engine_can(target: EngineSpec | Engine, spec: SampleSpec, options: AnalysisOptions) -> None:
    """What needs logits (exact, at_prefix) or a white-box loop (branching, rng='torch')."""
    engine = _engine_like(target)
    if options.exact:
        require_logits(engine, "exact=True (an exact enumeration)")
    if options.at_prefix is not None and not engine.kind.white_box:
        raise ParameterError(f"at_prefix (predicted next-token probabilities) needs next-token logits, and the {engine.name} "
                             "engine (a server) only returns sampled tokens: use engine='hf' or engine='llamacpp'", param="at_prefix")  # fmt: skip
    if not engine.kind.white_box:
        check_blackbox_request(engine, spec.rng, spec.chat, spec.method)


def _check_fits(engine: Engine, spec: SampleSpec) -> None:
    if engine.kind.white_box:
        check_context(engine, [encode_prompt(engine.tokenizer, p, spec.chat) for p in spec.prompts], spec.params.max_new_tokens)


def _fill(store: Store, engine: Engine, run_id: str, spec: SampleSpec, options: AnalysisOptions, progress: ProgressOption) -> SampleRun:
    """Compute and store the run's missing samples, then analyse and store the analysis."""
    total = spec.n * len(spec.prompts)
    try:
        with store.recording(run_id), progress_bar(progress, total, f"sampling ({spec.method})", "samples", store.count_samples(run_id)) as advance:
            draw_samples(engine, spec, StoreSink(store, run_id), advance)
    except KeyboardInterrupt:
        stored = store.count_samples(run_id)
        raise RunInterrupted(
            run_id,
            f"sample run {run_id} stopped with {stored} of {total} samples stored; td.resume('{run_id}') computes the rest, identically",
            f"tokendice sample --resume {run_id}",
        ) from None
    except EngineError as exc:  # e.g. the server went away: say what is kept and how to go on
        stored = store.count_samples(run_id)
        raise type(exc)(f"{exc}; {stored} of {total} samples are stored: continue with td.resume('{run_id}')") from exc
    record = store.get_run(run_id)
    run = summarise(spec, store.samples(run_id), engine_name=record.engine, model=record.model, white_box=engine.kind.white_box,
                    options=options, engine=engine, server=store.get_result(run_id, "server"), run_id=run_id)  # fmt: skip
    store.save_result(run_id, "analysis", run.to_dict())
    return run


# -- stored runs read back -------------------------------------------------------------------


@loads("sample")
def _load_sample(store: Store, record: RunRecord) -> SampleRun:
    """A stored sample run with its samples; an unfinished one is analysed from what it stored."""
    spec = load_sample_spec(store, record.id)
    samples = store.samples(record.id)
    data = store.get_result(record.id, "analysis")
    kind = ENGINE_KINDS.get(record.engine)
    if data is None or record.status != "complete":
        return summarise(spec, samples, engine_name=record.engine, model=record.model, white_box=kind is None or kind.white_box,
                         server=store.get_result(record.id, "server"), run_id=record.id)  # fmt: skip
    run = SampleRun.from_dict(data)
    run.run_id, run.samples = record.id, samples
    run.engine, run.model = run.engine or record.engine, run.model or record.model
    return run


@loads("enumerate")
def _load_enumeration(store: Store, record: RunRecord) -> Enumeration:
    data = store.get_result(record.id, "enumeration")
    if data is None:
        raise StoreError(f"run {record.id} holds no enumeration (status {record.status})")
    result = Enumeration.from_dict(data)
    result.run_id = record.id
    result.engine, result.model = result.engine or record.engine, result.model or record.model
    return result
