"""`perturb` and `variants`: how far small, meaning-preserving prompt edits move the output."""

from __future__ import annotations

import os
import shlex
from typing import Any, Sequence

from tokendice.api._common import EngineArg, check_context, check_progress, engine_spec, load, preflight, prompts_of, sampler, store_context
from tokendice.api._registry import loads, resumes
from tokendice.api._resume import differ, refuse, resumed_engine
from tokendice.api._variants import Names, UserVariants, variant_sets
from tokendice.engines.base import Engine
from tokendice.engines.spec import ENGINE_KINDS, EngineSpec
from tokendice.errors import EngineError, ParameterError, RunInterrupted, suggest
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.perturb.perturb import UNITS_PER_PROMPT, PerturbSettings, answer_spec
from tokendice.experiments.perturb.suite import (
    PerturbReport,
    fill_perturb_run,
    load_perturb_run,
    perturb_record,
    read_perturb_run,
    run_plan,
    start_perturb_run,
    total_units,
)
from tokendice.experiments.perturb.variants import VariantSet, build_variant_sets, parse_names, user_variants_of
from tokendice.params import SAMPLING_FIELDS, SamplingParams
from tokendice.render.progress import ProgressOption, progress_bar
from tokendice.store import Store
from tokendice.store.records import RunRecord

DEFAULT_MAX_NEW_TOKENS = 8
"""Completions compared by perturb are short: 8 new tokens unless `max_new_tokens` is given."""


def perturb(
    prompt: str | None = None,
    *,
    prompts: Sequence[str] | None = None,
    variants: Names = None,
    kinds: Names = None,
    user_variants: UserVariants = (),
    engine: EngineArg = None,
    model: str | None = None,
    chat: bool = False,
    samples: int = 200,
    mass: float = 0.95,
    max_nodes: int = 300,
    distribution: bool = True,
    answer: str | None = None,
    seed: int = 0,
    params: SamplingParams | None = None,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> PerturbReport:
    """How far small, meaning-preserving edits of the prompt move the output: a `PerturbReport`.

    For every variant against the original: first-step JS divergence and top-1 change, the
    greedy output, the total variation between the completion distributions (exact where an
    enumeration of the original reaches `mass` within `max_nodes` prefixes, else from `samples`
    draws of the original scored exactly under each variant; `distribution=False` skips it),
    and POSIX over the set. `answer`, an answer spec ("number", "first-line", "choice:A,B,C,D", ...
    as in `answers()`): also the total variation between the answer distributions, hard bounds from
    the original's completions and each variant's own (enumerated too, within `max_nodes`), scored
    under both prompts and grouped by answer. Give `prompt`, or `prompts` for a suite (summarised per variant
    kind). `variants`, `kinds` and `user_variants` choose the variants as in `variants()`.
    `sampling` takes the SamplingParams keywords (temperature, top_p, ...); `max_new_tokens`
    is 8 unless given. With `save`, the report is stored as a run after every prompt
    (`result.run_id`); an interrupted suite raises `RunInterrupted` and `resume(run_id)` goes on.
    """
    if params is None and "max_new_tokens" not in sampling:
        sampling = {**sampling, "max_new_tokens": DEFAULT_MAX_NEW_TOKENS}
    chosen = sampler(perturb, params, sampling)
    if (prompt is None) == (prompts is None):
        raise ParameterError("give a prompt or prompts (one of the two)", param="prompts")
    if prompt is not None and not isinstance(prompt, str):
        raise ParameterError(f"prompt must be a string (several go in prompts=[...]), got {prompt!r}", param="prompt")
    texts = prompts_of(prompt, "prompt") if prompt is not None else prompts_of(prompts, "prompts")
    vsets = variant_sets(texts, variants, kinds, user_variants, chat, "variants")
    settings = PerturbSettings(chosen, seed, samples, mass, max_nodes, distribution, answer=answer)
    check_progress(progress)
    spec = engine_spec(engine, model)
    if isinstance(spec, EngineSpec) and not spec.kind.white_box:
        raise EngineError(f"perturb needs next-token logits; the {spec.engine} engine only returns samples (use engine='hf' or 'llamacpp')")
    with store_context(save, db) as store:
        for with_chat in (False, True):
            shown = [v.prompt for s in vsets for v in (s.original, *s.variants) if v.chat == with_chat]
            if shown:
                preflight(spec, shown, with_chat, chosen.max_new_tokens)
        loaded = load(spec)
        _check_fits(loaded, vsets, chosen.max_new_tokens)
        report = start_perturb_run(loaded, vsets, settings, store, chat)
        return _measure(loaded, vsets, report, store, progress, db)


def _check_fits(engine: Engine, vsets: Sequence[VariantSet], max_new_tokens: int) -> None:
    """Every prompt that can be encoded, and max_new_tokens, fit the engine's context (one that
    cannot be encoded, e.g. without a chat template, is skipped with a note when measured)."""
    ids = []
    for vset in vsets:
        for v in (vset.original, *vset.variants):
            try:
                ids.append(encode_prompt(engine.tokenizer, v.prompt, v.chat))
            except ParameterError:
                continue
    check_context(engine, ids, max_new_tokens)


def _measure(
    engine: Engine, vsets: Sequence[VariantSet], report: PerturbReport, store: Store | None, progress: ProgressOption, db: Any
) -> PerturbReport:
    """Measure what `report` lacks, with a progress bar; an interruption says what is kept and how to go on."""
    done = UNITS_PER_PROMPT * len(report.prompts)
    label = f"perturb · {len(vsets)} prompts" if len(vsets) > 1 else "perturb"
    try:
        with progress_bar(progress, total_units(vsets), label, "units", done) as advance:
            return fill_perturb_run(engine, vsets, report, advance, store)
    except KeyboardInterrupt:
        if report.run_id is None:
            raise
        raise RunInterrupted(report.run_id, _kept(report, vsets, db), _cli_resume(report.run_id, db)) from None
    except EngineError as exc:  # e.g. out of memory on a long prompt
        if report.run_id is None:
            raise
        raise type(exc)(f"{exc}; {_kept(report, vsets, db)} (or: {_cli_resume(report.run_id, db)})") from exc


def _kept(report: PerturbReport, vsets: Sequence[VariantSet], db: Any) -> str:
    where = f", db={os.fspath(db)!r}" if db is not None else ""
    return (f"{len(report.prompts)} of {len(vsets)} prompts are stored in run {report.run_id}; "
            f"td.resume('{report.run_id}'{where}) measures the rest")


def _cli_resume(run_id: str | None, db: Any) -> str:
    return f"tokendice perturb --resume {run_id}" + (f" --db {shlex.quote(os.fspath(db))}" if db is not None else "")


@loads("perturb")
def _load(store: Store, record: RunRecord) -> PerturbReport:
    return read_perturb_run(store, record)


RUN_KEYWORDS = ("prompt", "prompts", "variants", "kinds", "user_variants", "chat", "samples", "mass", "max_nodes",
                "distribution", "answer", "seed", "params", "save", *SAMPLING_FIELDS)
"""The `perturb` keywords a resume may repeat: each must equal what the run used."""
ENGINE_KEYWORDS = ("engine", "model", *dict.fromkeys(o.name for kind in ENGINE_KINDS.values() for o in kind.options))


@resumes("perturb")
def _resume(run_id: str, *, db: str | None = None, progress: ProgressOption = None, **given: Any) -> PerturbReport:
    """Measure the prompts an interrupted perturb run lacks, into the same run, with everything
    the run was made with (settings, sampler, variants, engine, model, dtype, threads). A setting
    given again must equal the run's; transport-only engine options may change."""
    unknown = [k for k in given if k not in RUN_KEYWORDS and k not in ENGINE_KEYWORDS]
    if unknown:
        name = unknown[0]
        raise ParameterError(f"resume() of a perturb run got an unexpected keyword {name!r}{suggest(name, [*RUN_KEYWORDS, *ENGINE_KEYWORDS])}", param=name)
    check_progress(progress)
    with store_context(True, db) as store:
        record = perturb_record(store, run_id)
        settings, vsets, chat = run_plan(record)
        differ = _differing_settings(record, settings, vsets, chat, {k: v for k, v in given.items() if k in RUN_KEYWORDS})
        engine_given = {k: v for k, v in given.items() if k in ENGINE_KEYWORDS}
        spec, engine_differ = resumed_engine(record, engine_given.pop("engine", None), engine_given.pop("model", None), **engine_given)
        refuse(record.id, differ + engine_differ)
        loaded = load(spec)
        _check_fits(loaded, vsets, settings.params.max_new_tokens)
        report, vsets = load_perturb_run(store, record.id, loaded)
        return _measure(loaded, vsets, report, store, progress, db)


def _differing_settings(
    record: RunRecord, settings: PerturbSettings, vsets: list[VariantSet], chat: bool, given: dict[str, Any]
) -> list[tuple[str, str]]:
    """The `perturb` keywords given to a resume that differ from the run's, as (keyword, what differs)."""
    out = []
    prompts = [v.original.prompt for v in vsets]
    if "prompt" in given and [given["prompt"]] != prompts:
        out.append(differ("prompt", given["prompt"], prompts[0] if len(prompts) == 1 else prompts))
    if "prompts" in given and list(prompts_of(given["prompts"], "prompts")) != prompts:
        out.append(differ("prompts", given["prompts"], prompts))
    if "chat" in given and given["chat"] != chat:
        out.append(differ("chat", given["chat"], chat))
    chosen = {k: given[k] for k in ("variants", "kinds", "user_variants") if k in given}
    if chosen:
        rebuilt = build_variant_sets(prompts, chat, parse_names(chosen.get("variants")), parse_names(chosen.get("kinds"), "kinds"),
                                     user_variants_of(chosen.get("user_variants", ())))
        if [v.to_dict() for v in rebuilt] != [v.to_dict() for v in vsets]:
            measured = ", ".join(v.name for v in vsets[0].variants)
            for name, value in chosen.items():
                out.append((name, f"{name}={value!r} (the run measured {measured})"))
    for name in ("samples", "mass", "max_nodes", "distribution", "seed"):
        if name in given and given[name] != getattr(settings, name):
            out.append(differ(name, given[name], getattr(settings, name)))
    if "answer" in given and (given["answer"] and answer_spec(given["answer"])) != settings.answer:
        out.append(differ("answer", given["answer"], settings.answer))
    if "params" in given and given["params"] is not None and given["params"] != settings.params:
        out.append(differ("params", given["params"], settings.params))
    for name in SAMPLING_FIELDS:
        if name in given and given[name] != getattr(settings.params, name):
            out.append(differ(name, given[name], getattr(settings.params, name)))
    if "save" in given and given["save"] is not True:
        out.append(("save", f"save={given['save']!r} (a resumed run is stored in the run it continues)"))
    return out


