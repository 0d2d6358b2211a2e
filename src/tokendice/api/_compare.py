"""`compare` (models and engines on one prompt) and `diff` (two generations, token by token)."""

from __future__ import annotations

import os
from typing import Any, Sequence, Union

from tokendice.api import _common
from tokendice.api._common import EngineArg, check_context, sampler, store_context
from tokendice.api._registry import loads
from tokendice.engines.base import Engine
from tokendice.engines.spec import EngineSpec, engine_kind
from tokendice.errors import EngineError, ParameterError, StoreError, suggest
from tokendice.experiments.compare.compare import CompareReport, CompletionBudget, compare_work, pair_sides, run_compare, store_compare
from tokendice.experiments.compare.diff import RunDiff, side_from_trace
from tokendice.experiments.compare.diff import diff as diff_runs
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.results import Result
from tokendice.inputs import check_prompt
from tokendice.params import SamplingParams, require_bool, require_int, require_number
from tokendice.render.progress import ProgressOption, progress_bar
from tokendice.store import Store
from tokendice.store.records import RunRecord

NO_BLACK_BOX = (
    "compare needs whole next-token distributions, and the openai engine (a server) reports at most 20 "
    "logprobs per token: compare hf and llamacpp engines"
)

DiffArg = Union[str, "os.PathLike[str]", Result]
"""A side of a diff: a run id (`ID`, `ID:SAMPLE`, `ID:PROMPT:SAMPLE`), a trace JSON file, or a `Trace`."""


def compare(
    prompt: str,
    *,
    engines: Sequence[EngineArg] | None = None,
    models: Sequence[str | None] | None = None,
    continuation: str | None = None,
    top: int = 10,
    completions: bool = True,
    completion_tokens: int = 2,
    max_nodes: int = 50,
    mass: float = 0.99,
    chat: bool = False,
    params: SamplingParams | None = None,
    save: bool = True,
    db: str | None = None,
    progress: ProgressOption = None,
    **sampling: Any,
) -> CompareReport:
    """Compare models or engines on one prompt: a `CompareReport`.

    Sides: `engines=["hf", "llamacpp"]` (one model, default the embedded one),
    `models=["a", "b"]` (one engine, default hf), or as many engines as models, paired in
    order. An engine is a name, an `EngineSpec` (its options: dtype, threads, ...; one
    without a model takes the model paired with it) or a loaded engine. The first side
    is compared with each other one: per-step model distributions along a shared
    continuation (default: the first side's greedy one, `max_new_tokens` long) and, with
    `completions`, the total variation distance between their completion distributions
    under the sampler (`sampling` keywords or `params`), `completion_tokens` long,
    enumerated up to `max_nodes` prefixes or `mass`. `top`: k of the max |log-prob
    difference| over both top-k sets. With `save`, the report is stored as a run of kind
    'compare' (`result.run_id`; `load_run` reads it back).
    """
    chosen = sampler(compare, params, sampling)
    check_prompt(prompt)
    if continuation is not None:
        _check_continuation(continuation)
    require_int("top", top, 1, 100_000)
    require_bool("completions", completions)
    require_int("completion_tokens", completion_tokens, 1, 100_000)
    require_int("max_nodes", max_nodes, 1)
    require_number("mass", mass, 0, 1, low_open=True)
    require_bool("chat", chat)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ParameterError(f"progress must be None, True, False or a function (units, label), got {progress!r}", param="progress")
    budget = CompletionBudget(completion_tokens, max_nodes, mass) if completions else None
    sides = [_side(engine, model) for engine, model in pair_sides(_listed(engines, "engines"), _listed(models, "models"))]
    longest = max(chosen.max_new_tokens, completion_tokens if completions else 0)
    with store_context(save, db) as store:
        for side in sides:
            _common.preflight(side, [prompt], chat, longest)
        loaded = [_common.load(side) for side in sides]
        for engine in loaded:
            _white_box(engine.kind)
            check_context(engine, [encode_prompt(engine.tokenizer, prompt, chat)], longest)
        total = compare_work(loaded, chosen, continuation is not None, budget)
        with progress_bar(progress, total, "compare", "forwards") as advance:
            report = run_compare(loaded, prompt, chosen, continuation=continuation, top=top, completions=budget, chat=chat, progress=advance)
        if store is not None:
            store_compare(store, loaded, report, budget)
        return report


def _check_continuation(text: Any) -> None:
    """Non-empty text, valid UTF-8 (whitespace alone is a continuation too, e.g. a newline)."""
    if not isinstance(text, str) or not text:
        raise ParameterError(f"continuation must be a non-empty string, got {text!r}", param="continuation")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParameterError(f"continuation is not valid UTF-8 text (byte {exc.start})", param="continuation") from None


def _listed(values: Any, name: str) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ParameterError(f"{name} must be a list (e.g. {name}=['hf', 'llamacpp']), got {values!r}", param=name)
    return list(values)


def _side(engine: Any, model: Any) -> EngineSpec | Engine:
    """One side as a spec to load (or the engine given), refused at once if it gives no logits."""
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise ParameterError(f"each of models must be a non-empty string, got {model!r}", param="models")
    if isinstance(engine, str):
        _white_box(engine_kind(engine))
        return EngineSpec(engine, model)
    if isinstance(engine, EngineSpec):
        _white_box(engine.kind)
        if model is None:
            return engine
        if engine.model is not None:
            raise ParameterError(f"{engine!r} already names its model: give models= or models inside the EngineSpecs, not both", param="models")
        return engine.with_(model=model)
    if hasattr(engine, "kind") and hasattr(engine, "tokenizer"):
        _white_box(engine.kind)
        if model is not None:
            raise ParameterError("a loaded engine runs its own model: give models= with engine names or EngineSpecs", param="models")
        return engine
    raise ParameterError(f"each of engines must be an engine name, an EngineSpec or a loaded engine, got {engine!r}", param="engines")


def _white_box(kind: Any) -> None:
    if not kind.white_box:
        raise EngineError(NO_BLACK_BOX)


@loads("compare")
def _load_compare(store: Store, record: RunRecord) -> CompareReport:
    data = store.get_result(record.id, "report")
    if data is None:
        raise StoreError(f"run {record.id} holds no compare report (status {record.status})")
    report = CompareReport.from_dict(data)
    report.run_id = record.id
    return report


def diff(a: DiffArg, b: DiffArg, *, db: str | None = None, **unknown: Any) -> RunDiff:
    """Two generations token by token: a `RunDiff` (first divergence, both choices there and,
    from traces, both top-k lists; the log-prob drift along the common prefix).

    A side is a stored run id (`ID`: its trace, else its sample 0; `ID:SAMPLE`;
    `ID:PROMPT:SAMPLE` for a run over several prompts), a trace JSON file
    (`Trace.to_json()`, `tokendice trace --json`), or a `Trace`. The store (`db=`, default
    the user's) is only read, and only when a side is a run; the diff itself is not stored.
    """
    if unknown:
        name = next(iter(unknown))
        raise ParameterError(f"diff() got an unexpected keyword {name!r}{suggest(name, ['db'])}", param=name)
    if db is not None and not isinstance(db, (str, bytes)) and not hasattr(db, "__fspath__"):
        raise ParameterError(f"db must be a path, got {db!r}", param="db")
    sides = [_diff_side(value, name) for value, name in ((a, "a"), (b, "b"))]
    return diff_runs(sides[0], sides[1], db=db)


def _diff_side(value: Any, name: str) -> Any:
    if isinstance(value, Result):
        if value.kind != "trace":
            raise ParameterError(f"{name} must be a run id, a trace file or a Trace, got a {type(value).__name__}", param=name)
        return side_from_trace(value.to_dict(), f"trace {value.run_id}" if value.run_id else "trace")
    if hasattr(value, "__fspath__"):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{name} must be a run id (ID, ID:SAMPLE, ID:PROMPT:SAMPLE), a trace JSON file or a Trace, got {value!r}", param=name)
    return value
