"""What every API function does first: check its keywords, build its sampler, resolve its
engine, check the context length and the store, all before a model loads.

Engines load once per `EngineSpec` and are reused, so a notebook can call `trace`
again and again without reloading the model.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Union

from tokendice.engines.spec import ENGINE_KINDS, EngineSpec
from tokendice.errors import ParameterError, suggest
from tokendice.inputs import check_prompt
from tokendice.params import SAMPLING_FIELDS, SamplingParams

if TYPE_CHECKING:
    from tokendice.engines.base import Engine

EngineArg = Union[EngineSpec, "Engine", str, None]
"""An `EngineSpec`, an engine name ("hf", "llamacpp", "openai"), a loaded engine (e.g. a
FakeEngine), or None: the embedded model on transformers."""

_LOADED: dict[tuple[Any, ...], "Engine"] = {}


def sampler(fn: Callable[..., Any], params: SamplingParams | None, sampling: dict[str, Any]) -> SamplingParams:
    """`params` with the sampling keywords applied. A keyword that is neither a sampling
    parameter nor one of `fn`'s is a ParameterError naming the closest valid one."""
    unknown = [k for k in sampling if k not in SAMPLING_FIELDS]
    if unknown:
        own = [p for p in inspect.signature(fn).parameters if p not in ("sampling", "kwargs")]
        name = unknown[0]
        if any(kind.takes(name) for kind in ENGINE_KINDS.values()):
            raise ParameterError(
                f"{fn.__name__}() got an unexpected keyword {name!r}: engine options go in the engine's spec, "
                f"e.g. engine=EngineSpec('hf', {name}=...)", param=name,
            )
        raise ParameterError(
            f"{fn.__name__}() got an unexpected keyword {name!r}{suggest(name, [*SAMPLING_FIELDS, *own])}", param=name
        )
    if params is None:
        params = SamplingParams()
    elif not isinstance(params, SamplingParams):
        raise ParameterError(f"params must be a SamplingParams, got {type(params).__name__}", param="params")
    return replace(params, **sampling) if sampling else params


def prompts_of(prompt: Any, name: str = "prompt") -> tuple[str, ...]:
    """One prompt or a list of them, each checked (non-empty, valid UTF-8)."""
    if isinstance(prompt, str):
        return (check_prompt(prompt, name),)
    if isinstance(prompt, (list, tuple)) and prompt:
        return tuple(check_prompt(p, f"{name}[{i}]") for i, p in enumerate(prompt))
    raise ParameterError(f"{name} must be a non-empty string or a non-empty list of strings, got {prompt!r}", param=name)


def engine_spec(engine: EngineArg, model: str | None) -> EngineSpec | Engine:
    """The spec to load (or the engine given), checked: `model=` is a shortcut for
    `EngineSpec(model=...)` and goes with an engine name, not with a spec or an engine."""
    if engine is None or isinstance(engine, str):
        return EngineSpec(engine or "hf", model)
    if model is not None:
        raise ParameterError("give the model inside the EngineSpec (EngineSpec(..., model=...)), not as model=", param="model")
    if isinstance(engine, EngineSpec) or hasattr(engine, "kind"):
        return engine
    raise ParameterError(f"engine must be an EngineSpec, an engine name or a loaded engine, got {engine!r}", param="engine")


def load(engine: EngineSpec | Engine) -> Engine:
    """The loaded engine for a spec (once per spec and process), or the engine given."""
    if not isinstance(engine, EngineSpec):
        return engine
    key = engine.key()
    if key not in _LOADED:
        _LOADED[key] = engine.load()
    return _LOADED[key]


def forget_engines() -> None:
    """Drop the loaded engines (frees their memory; the next call loads again)."""
    _LOADED.clear()


def preflight(engine: EngineSpec | Engine, prompts: Sequence[str], chat: bool, max_new_tokens: int) -> None:
    """Check, before the model loads, that it is here, and the context length where that is cheap:
    the transformers engine on a model that is here (its config and tokenizer load in a moment)."""
    if not isinstance(engine, EngineSpec):
        return
    engine.check_model()
    if engine.engine != "hf":
        return
    from tokendice.engines.catalog import context_length, local_dir

    directory = local_dir(engine.model)
    limit = context_length(directory) if directory is not None else None
    if limit is None:
        return
    if max_new_tokens >= limit:
        raise ParameterError(f"max_new_tokens must be below the model's context length of {limit} tokens, got {max_new_tokens}", param="max_new_tokens")
    from tokendice.engines.quiet import quiet_third_party

    with quiet_third_party():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True,
                                                  trust_remote_code=bool(engine.get("trust_remote_code")))
    for prompt in prompts:
        if chat and getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
            n = len(ids["input_ids"] if hasattr(ids, "keys") else ids)
        else:
            n = len(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        _check_fits(n, max_new_tokens, limit)


def check_context(engine: Engine, prompt_ids: Iterable[Sequence[int]], max_new_tokens: int) -> None:
    """After loading: every prompt plus max_new_tokens fits the engine's context."""
    limit = getattr(engine, "context_length", None)
    if not limit:
        return
    for ids in prompt_ids:
        _check_fits(len(ids), max_new_tokens, limit)


def _check_fits(prompt_tokens: int, max_new_tokens: int, limit: int) -> None:
    if prompt_tokens + max_new_tokens > limit:
        raise ParameterError(
            f"the prompt ({prompt_tokens} tokens) and max_new_tokens ({max_new_tokens}) exceed the model's "
            f"context length of {limit} tokens: shorten the prompt or lower max_new_tokens",
            param="max_new_tokens",
        )


def open_store(save: Any, db: Any) -> Any:
    """The run store when saving (opened now, so a bad or read-only file fails before any model
    loads), else None. The caller closes it."""
    if not isinstance(save, bool):
        raise ParameterError(f"save must be True or False, got {save!r}", param="save")
    if db is not None and not isinstance(db, (str, bytes)) and not hasattr(db, "__fspath__"):
        raise ParameterError(f"db must be a path, got {db!r}", param="db")
    if not save:
        return None
    from tokendice.store import Store

    return Store(db)


class _NoStore:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def store_context(save: Any, db: Any) -> Any:
    """`with store_context(save, db) as store:` the open store, or None when not saving."""
    store = open_store(save, db)
    return store if store is not None else _NoStore()


def check_progress(progress: Any) -> None:
    """`progress` is None (shown when someone watches), True, False, or a callable(units, label)."""
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise ParameterError(f"progress must be None, True, False or a callable(units, label), got {progress!r}", param="progress")
