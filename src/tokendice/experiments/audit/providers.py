"""Where an audit gets its engines: one per combination of controls, loaded once.

A provider says which controls it can vary (`controls`, a capability, so the audit
never checks engine types): the transformers provider builds an `HFEngine` per
dtype / attention / KV-cache combination from the baseline's `EngineSpec`; a fixed
provider wraps an engine that was already built (a FakeEngine in tests, llama.cpp)
and varies only what every white-box engine allows: batch size and threads.
Conditions a provider cannot vary are reported as "not applicable for engine NAME".

The "engines" condition runs the same request on other engines: by default every
other engine on the same model (an OpenAI-compatible server needs its base_url, so
it is unavailable unless given); `others` specs or engines replace the default of
their engine.
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Mapping, Protocol, Sequence, Union

from tokendice.engines.base import Engine
from tokendice.engines.spec import ENGINES as ENGINE_NAMES
from tokendice.engines.spec import EngineSpec
from tokendice.errors import TokendiceError
from tokendice.experiments.audit.controls import ATTENTION, BATCH, DTYPE, ENGINES, KV_CACHE, THREADS, Setup  # noqa: F401

WHITE_BOX_CONTROLS = frozenset({BATCH, THREADS})
"""What any white-box engine lets the audit vary: prefill takes any batch; threads are the
engine's (or torch's global count)."""

OtherEngine = Union[Engine, str]
"""Another engine for the same model, or the reason it is unavailable."""
Other = Union[EngineSpec, Engine, str, Callable[[], OtherEngine]]
"""How to get another engine: a spec to load, an engine, a reason it is unavailable, or a loader."""

NEEDS_BASE_URL = "unavailable: the openai engine needs a server's base_url (give it an EngineSpec('openai', base_url=...))"


class EngineProvider(Protocol):
    """Engines for an audit: the baseline's and its variants, and other engines for the model."""

    name: str
    model_id: str
    controls: frozenset[str]

    def engine(self, setup: Setup) -> Engine:
        """The engine for `setup` (loaded on first use, then reused)."""
        ...

    def release(self, setup: Setup) -> None:
        """Free the engine for `setup` unless it is the baseline's."""
        ...

    def others(self) -> list[str]:
        """Labels of the other engines that could run this model."""
        ...

    def other(self, label: str) -> OtherEngine:
        """Another engine for this model, loaded, or the reason it is unavailable."""
        ...

    def release_other(self, label: str, engine: Any) -> None:
        """Close another engine if this provider loaded it."""
        ...


class _OtherEngines:
    """The other engines of an audit, by label (`_keep_others` in `__init__`); closes those it loaded itself."""

    def _keep_others(self, others: Mapping[str, Other] | None) -> None:
        self._others = dict(others or {})
        self._others_loaded: set[str] = set()

    def others(self) -> list[str]:
        return list(self._others)

    def other(self, label: str) -> OtherEngine:
        found = self._others[label]
        if isinstance(found, EngineSpec):
            self._others_loaded.add(label)
            return load_other(found)
        if isinstance(found, str) or hasattr(found, "kind"):
            return found  # type: ignore[return-value]
        self._others_loaded.add(label)
        return found()  # type: ignore[operator]

    def release_other(self, label: str, engine: Any) -> None:
        if label in self._others_loaded:
            close = getattr(engine, "close", None)
            if callable(close):
                close()
            gc.collect()


class FixedProvider(_OtherEngines):
    """A provider over an engine that is already built; `others` maps a label to another engine."""

    def __init__(
        self,
        engine: Engine,
        others: Mapping[str, Other] | None = None,
        controls: frozenset[str] = WHITE_BOX_CONTROLS,
    ) -> None:
        self._engine = engine
        self.name = engine.name
        self.model_id = engine.model_id
        self._keep_others(others)
        self.controls = controls | ({ENGINES} if others is not None else frozenset())

    def engine(self, setup: Setup) -> Engine:
        return self._engine

    def release(self, setup: Setup) -> None:
        return None


class HFProvider(_OtherEngines):
    """Transformers engines for one model: one HFEngine per (dtype, attention, KV cache), each
    loaded from the baseline's spec with that control changed."""

    name = "hf"
    controls = frozenset({BATCH, THREADS, DTYPE, ATTENTION, KV_CACHE, ENGINES})

    def __init__(self, spec: EngineSpec, baseline: Setup, engine: Engine, others: Mapping[str, Other] | None = None) -> None:
        self.spec = spec
        self.baseline = baseline
        self._loaded: dict[tuple[str, str, str, bool], Engine] = {baseline.model_key: engine}
        self.model_id = engine.model_id
        self._keep_others(others)

    def engine(self, setup: Setup) -> Engine:
        key = setup.model_key
        if key not in self._loaded:
            self._loaded[key] = self.spec.with_(dtype=setup.dtype, attention=setup.attention, kv_cache=setup.kv_cache).load()
        return self._loaded[key]

    def release(self, setup: Setup) -> None:
        if setup.model_key != self.baseline.model_key and self._loaded.pop(setup.model_key, None) is not None:
            gc.collect()


def load_other(spec: EngineSpec) -> OtherEngine:
    """Load another engine, or say why it is unavailable."""
    try:
        return spec.load()  # type: ignore[no-any-return]
    except (TokendiceError, ImportError, OSError) as exc:
        return f"unavailable: {_first_line(exc)}"


def other_engines(spec: EngineSpec | None, engine: Engine, given: Sequence[EngineSpec | Engine] | None) -> dict[str, Other] | None:
    """The other engines of the "engines" condition, by label: for a spec, every other engine on
    its model (openai: unavailable without a base_url), each replaced by a given one of the same
    engine; for an engine given as it is, only those given (None: the condition does not apply).
    A given engine whose name is taken (by the baseline's or another given one) is labelled
    "name model"."""
    chosen: dict[str, Other] = {}
    if spec is not None and spec.engine == engine.name:
        for name in ENGINE_NAMES:
            if name != engine.name:
                chosen[name] = NEEDS_BASE_URL if name == "openai" else EngineSpec(name, spec.model)
    elif given is None:
        return None
    used = {engine.name}
    for item in given or ():
        name, model = (item.engine, item.model) if isinstance(item, EngineSpec) else (item.name, item.model_id)
        label = name if name not in used else f"{name} {model or 'default'}"
        base, n = label, 2
        while label in used:
            label, n = f"{base} ({n})", n + 1
        used.add(label)
        chosen[label] = item
    return chosen


ENGINE_CONTROLS = {"hf": HFProvider.controls, "llamacpp": frozenset({BATCH})}
"""What the audit can vary per engine: llama.cpp sets its threads when it loads."""


def provider_for(spec: EngineSpec | None, engine: Engine, baseline: Setup,
                 others: Sequence[EngineSpec | Engine] | None = None) -> EngineProvider:
    """A provider around the baseline's loaded `engine`; `spec` is how it was loaded (None: an
    engine given as it is, whose variants cannot be loaded)."""
    found = other_engines(spec, engine, others)
    if spec is not None and spec.engine == "hf" and engine.name == "hf":
        return HFProvider(spec, baseline, engine, found)
    controls = ENGINE_CONTROLS.get(engine.name, WHITE_BOX_CONTROLS) - {ENGINES}
    return FixedProvider(engine, found, controls)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
