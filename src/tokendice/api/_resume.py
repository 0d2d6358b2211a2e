"""Resuming a run: the engine it was made with, rebuilt from its manifest, and the settings a
caller gives again checked against it.

Every option that decides results (`decides_results` in engines/spec.py) comes from the run;
one given that differs is listed, with both values, and the resume refuses (nothing loads,
nothing is added). Transport options (timeout, retries, concurrency, base URL, API key
variable) may be given anew and apply.
"""

from __future__ import annotations

from typing import Any, Sequence

from tokendice.engines.base import Engine
from tokendice.engines.spec import ENGINE_KINDS, EngineSpec
from tokendice.errors import ParameterError
from tokendice.store.records import RunRecord

Difference = tuple[str, str]
"""(keyword, "keyword=given (the run used keyword=used)")."""

LEGACY_OPTION_NAMES = {"attn_implementation": "attention"}
"""Options earlier versions recorded under other names in a manifest's engine description."""


def differ(name: str, given: Any, used: Any) -> Difference:
    return name, f"{name}={given!r} (the run used {name}={used!r})"


def refuse(run_id: str, differences: Sequence[Difference]) -> None:
    """Raise one ParameterError naming every setting given that differs from the run's."""
    if differences:
        listed = "; ".join(text for _, text in differences)
        raise ParameterError(f"a resumed run keeps the settings of run {run_id}, and these differ: {listed}", param=differences[0][0])


def recorded_engine(record: RunRecord) -> dict[str, Any]:
    """The options of the run's engine that its manifest recorded (the engine's description),
    under today's names: what to rebuild the engine with."""
    kind = ENGINE_KINDS.get(record.engine)
    if kind is None:
        return {}
    described = {LEGACY_OPTION_NAMES.get(k, k): v for k, v in (record.manifest.get("engine") or {}).items()}
    options = {o.name: described[o.name] for o in kind.options if described.get(o.name) is not None}
    if options.get("server") == "unknown":
        del options["server"]  # not detected then: detect again
    return options


def resumed_engine(record: RunRecord, engine: Any = None, model: str | None = None, **options: Any) -> tuple[EngineSpec | Engine, list[Difference]]:
    """The engine to finish `record` with (a spec, or the loaded engine given), and the given
    settings that differ from the run's. `engine` may be the run's engine name, an EngineSpec
    or a loaded engine (required for engines that cannot be loaded by name, e.g. FakeEngine)."""
    recorded = recorded_engine(record)
    options = {k: v for k, v in options.items() if v is not None}
    out: list[Difference] = []
    if engine is not None and not isinstance(engine, (str, EngineSpec)):
        if not hasattr(engine, "kind"):
            raise ParameterError(f"engine must be an EngineSpec, an engine name or a loaded engine, got {engine!r}", param="engine")
        if options:
            raise ParameterError(f"give {', '.join(options)} inside the engine's spec, not beside a loaded engine", param=next(iter(options)))
        if (engine.name, engine.model_id) != (record.engine, record.model):
            out.append(differ("engine", f"{engine.name}/{engine.model_id}", f"{record.engine}/{record.model}"))
        if model is not None and model != record.model:
            out.append(differ("model", model, record.model))
        described = {LEGACY_OPTION_NAMES.get(k, k): v for k, v in engine.describe().items()}
        kind = ENGINE_KINDS.get(record.engine)
        for name, used in recorded.items():
            if kind is not None and kind.option(name).decides_results and name in described and described[name] != used:
                out.append(differ(name, described[name], used))
        return engine, out
    if isinstance(engine, EngineSpec):
        model = engine.model if model is None else model
        options = {**engine.options, **options}
        engine = engine.engine
    if engine is not None and engine != record.engine:
        out.append(differ("engine", engine, record.engine))
    if model is not None and model != record.model:
        out.append(differ("model", model, record.model))
    kind = ENGINE_KINDS.get(record.engine)
    if kind is None:
        if out:
            return None, out  # type: ignore[return-value]  # refused for what differs
        raise ParameterError(f"run {record.id} was made with the {record.engine} engine, which cannot be loaded by name: "
                             "pass it, loaded, as engine=", param="engine")
    chosen = dict(recorded)
    for name, value in options.items():
        option = kind.option(name)  # an option this engine does not take: an error naming it
        value = option.check(value)
        if option.decides_results:
            used = recorded.get(name, option.default)
            if value != used:
                out.append(differ(name, value, used))
        else:
            chosen[name] = value
    chosen, spec_model = _as_fresh(record.engine, chosen, record.model)
    try:
        return EngineSpec(record.engine, spec_model, **chosen), out
    except ParameterError as exc:
        raise ParameterError(f"cannot resume run {record.id} here: {exc}", param=exc.param) from None


def _as_fresh(engine: str, options: dict[str, Any], model: str | None) -> tuple[dict[str, Any], str | None]:
    """Leave out recorded values that are today's defaults, so that the spec reads as a fresh
    call's would (and a notebook that samples and then resumes finds the engine it loaded)."""
    kind = ENGINE_KINDS[engine]
    options = {k: v for k, v in options.items() if v != kind.option(k).default}
    if engine != "hf":
        return options, model
    from tokendice.engines.embedded import DEFAULT_MODEL
    from tokendice.engines.threads import default_threads

    if options.get("threads") == default_threads():
        options = {k: v for k, v in options.items() if k != "threads"}
    return options, None if model == DEFAULT_MODEL else model
