"""`audit` and `agreement`: is it deterministic here, and where do runs fork?

The engine and its settings come from one `EngineSpec` (`engine=EngineSpec("hf",
dtype="float32", threads=1)`): they are the audit's baseline, and each condition
changes one of them. The thread count is part of the baseline like the dtype: the
spec's, else torch's default (the physical cores, fixed for a machine), and the
report and the run's manifest record the number. When other processes keep the
cores busy, runs on several threads wait for each other and crawl: the call then
warns (`BusyMachineWarning`, before the runs start) and keeps the note in
`report.notes`; the CLI prints it on stderr.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence, Union

from tokendice.api import _common
from tokendice.api._common import EngineArg, check_context, check_progress, engine_spec, preflight, prompts_of, sampler, store_context
from tokendice.api._registry import loads
from tokendice.engines.base import Engine
from tokendice.engines.spec import DTYPES, EngineSpec
from tokendice.engines.threads import busy_note, default_threads
from tokendice.errors import BusyMachineWarning, EngineError, ParameterError, StoreError
from tokendice.experiments.audit.agreement import AgreementReport, chunks_of, compile_regex, run_agreement, store_agreement
from tokendice.experiments.audit.audit import plan, run_audit, store_audit
from tokendice.experiments.audit.conditions import FILLER_OFFSETS
from tokendice.experiments.audit.controls import BATCH, BATCH_SIZES, ENGINES, Setup, parse_groups
from tokendice.experiments.audit.providers import provider_for
from tokendice.experiments.audit.report import AuditReport
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.inputs import check_prompt
from tokendice.params import RandomSpec, SamplingParams, require_bool, require_int
from tokendice.render.progress import ProgressOption, progress_bar
from tokendice.store import Store
from tokendice.store.records import RunRecord

MAX_BATCH = 4096


def audit(
    prompt: str,
    *,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    repeats: int = 5,
    conditions: str | Sequence[str] | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    others: Sequence[Union[EngineSpec, Engine]] | None = None,
    seed: int = 0,
    rng: str = "per-sample",
    deterministic: bool = False,
    chat: bool = False,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> AuditReport:
    """Run one request under a matrix of conditions and say which change the output: an `AuditReport`.

    The baseline is the engine spec's settings (by default the embedded model on
    transformers, batch 1, float32, torch's default thread count, KV cache on, sdpa
    attention), run `repeats` times; its first run is the reference. `conditions` picks
    groups among baseline, batch, dtype, threads, kv_cache, attention, engines (a
    comma-separated string or a list; default all; the baseline always runs).
    `batch_sizes` are the batch condition's sizes. The engines condition runs the request
    on every other engine for the same model; `others` (EngineSpecs or loaded engines)
    replace the default of their engine, e.g. `others=[EngineSpec("openai",
    base_url="http://127.0.0.1:8000/v1")]` for a server. `deterministic` turns on torch's
    deterministic algorithms for every run. `sampling` takes the SamplingParams keywords.
    With `save`, the audit is stored as a run of kind 'audit' and `report.run_id` is set
    (`load_run` reads it back); an interrupted audit stores nothing.
    """
    chosen = sampler(audit, params, sampling)
    random = RandomSpec(seed, rng)
    check_prompt(prompt)
    require_int("repeats", repeats, 1)
    groups = parse_groups(conditions)
    sizes = _batch_sizes(batch_sizes)
    require_bool("deterministic", deterministic)
    require_bool("chat", chat)
    check_progress(progress)
    spec = engine_spec(engine, model)
    given_others = _others(others, groups)
    _require_white_box(spec)
    with store_context(save, db) as store:
        preflight(spec, [prompt], chat, chosen.max_new_tokens)
        loaded = _loaded(spec)
        ids = encode_prompt(loaded.tokenizer, prompt, chat)
        longest = len(ids) + (max(FILLER_OFFSETS) if BATCH in groups and max(sizes) > 1 else 0)
        check_context(loaded, [[0] * longest], chosen.max_new_tokens)
        baseline = baseline_setup(spec, loaded, deterministic)
        notes = _busy(baseline)
        provider = provider_for(spec if isinstance(spec, EngineSpec) else None, loaded, baseline, given_others)
        total = len(plan(provider, groups, baseline, sizes)) * repeats
        with progress_bar(progress, total, "audit", unit="runs") as advance:
            report = run_audit(provider, prompt, chosen, random, repeats, groups, baseline, sizes, chat, advance)
        report.notes += notes
        if store is not None:
            store_audit(store, report, [o.to_dict() for o in given_others or () if isinstance(o, EngineSpec)])
        return report


def agreement(
    prompts: Sequence[str],
    *,
    engine: EngineArg = None,
    model: str | None = None,
    params: SamplingParams | None = None,
    repeats: int = 5,
    answer_regex: str | None = None,
    batch_size: int = 1,
    seed: int = 0,
    rng: str = "per-sample",
    deterministic: bool = False,
    chat: bool = False,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> AgreementReport:
    """Run every prompt `repeats` times and measure agreement: an `AgreementReport` with TARr@N
    (the share of prompts whose N outputs are all identical) and, with `answer_regex`, TARa@N
    (the same for the answers it extracts: its first group, else the whole match).

    `batch_size` above 1 decodes that many prompts together, left-padded, rotating their
    order every repeat, so a prompt meets different neighbours as on a busy server. The
    engine settings (dtype, threads, ...) come from the EngineSpec, as in `audit`. With
    `save`, stored as a run of kind 'audit' (`load_run` reads it back).
    """
    chosen = sampler(agreement, params, sampling)
    random = RandomSpec(seed, rng)
    texts = list(prompts_of(prompts, "prompts"))
    require_int("repeats", repeats, 1)
    require_int("batch_size", batch_size, 1, MAX_BATCH)
    compile_regex(answer_regex)
    require_bool("deterministic", deterministic)
    require_bool("chat", chat)
    check_progress(progress)
    spec = engine_spec(engine, model)
    _require_white_box(spec)
    with store_context(save, db) as store:
        preflight(spec, texts, chat, chosen.max_new_tokens)
        loaded = _loaded(spec)
        check_context(loaded, [encode_prompt(loaded.tokenizer, p, chat) for p in texts], chosen.max_new_tokens)
        setup = baseline_setup(spec, loaded, deterministic).with_(batch_size=batch_size)
        notes = _busy(setup)
        provider = provider_for(spec if isinstance(spec, EngineSpec) else None, loaded, setup)
        total = repeats * chunks_of(len(texts), batch_size)
        with progress_bar(progress, total, "agreement", unit="batches") as advance:
            report = run_agreement(provider, texts, chosen, random, repeats, answer_regex, setup, chat, advance)
        report.notes += notes
        if store is not None:
            store_agreement(store, report)
        return report


def baseline_setup(spec: EngineSpec | Engine, engine: Engine, deterministic: bool) -> Setup:
    """The baseline's controls: the loaded engine's dtype, attention and KV cache (transformers),
    and the spec's thread count (None: torch's default; an engine that chose its own, as
    llama.cpp does, keeps it)."""
    threads = spec.options.get("threads") if isinstance(spec, EngineSpec) else None
    own = getattr(engine, "threads", None)
    if threads is None and isinstance(own, int) and own != default_threads():
        threads = own
    dtype = getattr(engine, "dtype", "float32")
    attention = getattr(engine, "attention", "sdpa")
    return Setup(
        engine=engine.name, dtype=dtype if dtype in DTYPES else "float32",
        attention=attention if attention in ("sdpa", "eager") else "sdpa",
        kv_cache=bool(getattr(engine, "kv_cache", True)), threads=threads, deterministic=deterministic,
    )


def _loaded(spec: EngineSpec | Engine) -> Engine:
    engine = _common.load(spec)
    if not engine.kind.white_box:
        raise EngineError(f"the audit needs a white-box engine (next-token logits); {engine.name} is black-box")
    return engine


def _require_white_box(spec: EngineSpec | Engine) -> None:
    if isinstance(spec, EngineSpec) and not spec.kind.white_box:
        raise ParameterError(
            f"the audit needs a white-box engine (next-token logits), and {spec.engine} is black-box: audit a server "
            f"beside a white-box baseline with others=[EngineSpec('{spec.engine}', ...)]", param="engine",
        )


def _busy(setup: Setup) -> list[str]:
    """The busy-machine note for the baseline's thread count, warned now and kept in the report."""
    note = busy_note(setup.resolved_threads)
    if note is None:
        return []
    warnings.warn(note, BusyMachineWarning, stacklevel=3)
    return [note]


def _batch_sizes(sizes: Any) -> tuple[int, ...]:
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ParameterError(f"batch_sizes must be a non-empty list of integers >= 1, got {sizes!r}", param="batch_sizes")
    for size in sizes:
        require_int("batch_sizes", size, 1, MAX_BATCH)
    return tuple(int(s) for s in sizes)


def _others(others: Any, groups: Sequence[str]) -> list[EngineSpec | Engine] | None:
    if others is None:
        return None
    items = [others] if isinstance(others, EngineSpec) else others
    if not isinstance(items, (list, tuple)) or any(not (isinstance(o, EngineSpec) or hasattr(o, "kind")) for o in items):
        raise ParameterError(f"others must be a list of EngineSpecs or loaded engines, got {others!r}", param="others")
    if ENGINES not in groups:
        raise ParameterError("others are the engines condition's engines, and conditions leaves it out: add 'engines'", param="others")
    return list(items)


@loads("audit")
def _load_audit(store: Store, record: RunRecord) -> Union[AuditReport, AgreementReport]:
    """Runs of kind 'audit': manifest mode 'conditions' (an AuditReport) or 'prompts' (an
    AgreementReport), the report under result 'report'; runs stored by earlier versions load too."""
    data = store.get_result(record.id, "report")
    if data is None:
        raise StoreError(f"run {record.id} holds no audit report (status {record.status})")
    prompts = record.manifest.get("mode") == "prompts" or data.get("kind") in ("audit_prompts", "audit-prompts")
    result: Union[AuditReport, AgreementReport] = (AgreementReport if prompts else AuditReport).from_dict(data)
    result.run_id = record.id
    return result
