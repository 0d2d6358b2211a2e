"""Where an audit gets its engines: one per combination of controls, loaded once.

A provider says which controls it can vary (`controls`, a capability, so the audit
never checks engine types): the transformers provider builds an `HFEngine` per
dtype / attention / KV-cache combination; a fixed provider wraps an engine that
was already built (a FakeEngine in tests, llama.cpp) and varies only what every
white-box engine allows: batch size and threads. Conditions a provider cannot
vary are reported as "not applicable for engine NAME".
"""

from __future__ import annotations

import gc
from typing import Any, Callable, Mapping, Protocol

from tokendice.engines.base import Engine
from tokendice.errors import TokendiceError
from tokendice.experiments.audit.controls import ATTENTION, BATCH, DTYPE, ENGINES, KV_CACHE, THREADS, Setup  # noqa: F401
WHITE_BOX_CONTROLS = frozenset({BATCH, THREADS})
"""What any white-box engine lets the audit vary: prefill takes any batch; torch threads are global."""

OtherEngine = Engine | str
"""Another engine for the same model, or the reason it is unavailable."""


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
        """Names of the other engines that could run this model."""
        ...

    def other(self, name: str) -> OtherEngine:
        """Another engine for this model, loaded, or the reason it is unavailable."""
        ...


class FixedProvider:
    """A provider over an engine that is already built; `others` maps a name to another engine."""

    def __init__(
        self,
        engine: Engine,
        others: Mapping[str, OtherEngine | Callable[[], OtherEngine]] | None = None,
        controls: frozenset[str] = WHITE_BOX_CONTROLS,
    ) -> None:
        self._engine = engine
        self.name = engine.name
        self.model_id = engine.model_id
        self._others = dict(others or {})
        self.controls = controls | ({ENGINES} if others is not None else frozenset())

    def engine(self, setup: Setup) -> Engine:
        return self._engine

    def release(self, setup: Setup) -> None:
        return None

    def others(self) -> list[str]:
        return list(self._others)

    def other(self, name: str) -> OtherEngine:
        found = self._others[name]
        return found() if callable(found) else found


class HFProvider:
    """Transformers engines for one model: one HFEngine per (dtype, attention, KV cache)."""

    name = "hf"
    controls = frozenset({BATCH, THREADS, DTYPE, ATTENTION, KV_CACHE, ENGINES})

    def __init__(self, model: str | None = None, baseline: Setup | None = None, trust_remote_code: bool = False,
                 base_url: str | None = None, engine: Engine | None = None) -> None:
        self.model = model
        self.trust_remote_code = trust_remote_code
        self.base_url = base_url
        self.baseline = baseline or Setup()
        self._loaded: dict[tuple[str, str, str, bool], Engine] = {}
        if engine is not None:  # an engine the caller already loaded serves as the baseline's
            self._loaded[self.baseline.model_key] = engine
        self.model_id = engine.model_id if engine is not None else self.engine(self.baseline).model_id

    def engine(self, setup: Setup) -> Engine:
        key = setup.model_key
        if key not in self._loaded:
            from tokendice.engines.hf import HFEngine

            self._loaded[key] = HFEngine(
                self.model, dtype=setup.dtype, attention=setup.attention,
                kv_cache=setup.kv_cache, trust_remote_code=self.trust_remote_code,
            )
        return self._loaded[key]

    def release(self, setup: Setup) -> None:
        if setup.model_key != self.baseline.model_key and self._loaded.pop(setup.model_key, None) is not None:
            gc.collect()

    def others(self) -> list[str]:
        from tokendice.engines import ENGINES as NAMES

        return [name for name in NAMES if name != self.name]

    def other(self, name: str) -> OtherEngine:
        if name == "openai":  # a server serves the model under a name, and needs a URL
            return load_other(name, self.model_id, base_url=self.base_url)
        return load_other(name, self.model)


def load_other(name: str, model: str | None, **options: Any) -> OtherEngine:
    """Load engine `name` for `model`, or say why it is unavailable."""
    from tokendice.engines import load_engine

    try:
        return load_engine(name, model, **options)
    except (TokendiceError, ImportError) as exc:
        return f"unavailable: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


ENGINE_CONTROLS = {"hf": HFProvider.controls, "llamacpp": frozenset({BATCH, ENGINES})}
"""What the audit can vary per engine: llama.cpp runs its own threads (set at load), not torch's."""


def provider_for(engine: str | Engine, model: str | None = None, baseline: Setup | None = None,
                 base_url: str | None = None, loaded: Engine | None = None, **options: Any) -> EngineProvider:
    """A provider for an engine name or instance. `loaded`: the baseline's engine, when already loaded
    with the baseline's settings (the API's engine cache)."""
    if not isinstance(engine, str):
        return FixedProvider(engine)
    if engine == "hf":
        return HFProvider(model, baseline, bool(options.get("trust_remote_code")), base_url, engine=loaded)
    from tokendice.engines import ENGINES as NAMES
    from tokendice.engines import load_engine

    main = loaded or load_engine(engine, model, **options)
    others: dict[str, Callable[[], OtherEngine]] = {}
    for name in NAMES:
        if name != engine:
            others[name] = lambda n=name: load_other(n, model, **({"base_url": base_url} if n == "openai" else {}))
    return FixedProvider(main, others, ENGINE_CONTROLS.get(engine, WHITE_BOX_CONTROLS) - {ENGINES})
