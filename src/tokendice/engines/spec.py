"""What an engine is before it loads: its options, its capabilities, and one validated spec.

Every engine declares an `EngineKind`: whether it gives next-token logits
(white-box) or only samples (black-box), and the options it takes, each with its
type, default and range, and whether it decides results (dtype, threads, ...) or
only transport (timeout, retries, ...). `EngineSpec(engine, model, **options)` is
the one way to say which engine runs which model with which settings; it is
checked when built, before anything heavy is imported: an option the engine does
not take, or a bad value, is a `ParameterError` naming it (and the closest valid
name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from tokendice.errors import ParameterError, suggest

DTYPES = ("float32", "bfloat16", "float16")
ATTENTIONS = ("sdpa", "eager")


def max_threads() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Option:
    """One option an engine takes. `decides_results` False: it only decides transport
    (how requests travel), so a resumed run may change it."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high_is_cpus: bool = False
    decides_results: bool = True

    def check(self, value: Any) -> Any:
        if value is None and self.default is None:
            return None
        ok = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ParameterError(f"{self.name} must be {self._kind()}, got {value!r}", param=self.name)
        if self.choices and value not in self.choices:
            raise ParameterError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, got {value!r}", param=self.name)
        if self.low is not None and value < self.low:
            raise ParameterError(f"{self.name} must be >= {self.low:g}, got {value!r}", param=self.name)
        if self.high_is_cpus and value > max_threads():
            raise ParameterError(f"{self.name} must be at most {max_threads()} (the CPUs of this machine), got {value!r}", param=self.name)
        return value

    def _kind(self) -> str:
        return {int: "an integer", float: "a number", str: "a string", bool: "True or False"}.get(self.type, self.type.__name__)


@dataclass(frozen=True)
class EngineKind:
    """An engine before it is loaded: what it can do and which options it takes."""

    name: str
    description: str
    white_box: bool  # next-token logits (tokendice runs its own sampler chain), else a server that samples
    options: tuple[Option, ...]
    loader: str = ""  # "module:Class"; empty for engines built directly (FakeEngine)
    per_request_seeds: bool = False  # black-box: the server takes a seed per request
    merges_states: bool = False  # white-box: `merge` stacks rows of several states into one batch
    rewinds_states: bool = False  # white-box: `rewind` drops the last tokens of a state, keeping its prefix's cache

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        names = [o.name for o in self.options]
        takes = f"; it takes {', '.join(names)}" if names else "; it takes none"
        raise ParameterError(f"the {self.name} engine takes no option {name!r}{suggest(name, names)}{takes}", param=name)

    def takes(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    def capabilities(self) -> dict[str, bool]:
        return {
            "logits": self.white_box,
            "dtype": self.takes("dtype"),
            "threads": self.takes("threads"),
            "per_request_seeds": self.per_request_seeds,
            "merges_states": self.merges_states,
            "rewinds_states": self.rewinds_states,
        }


_THREADS_HELP = "CPU threads (default: torch's default, the physical cores; recorded, since it can change results)"

HF = EngineKind(
    "hf",
    "transformers: any causal LM AutoModelForCausalLM loads (white-box)",
    True,
    (
        Option("dtype", str, "float32", "weights and activations dtype", choices=DTYPES),
        Option("threads", int, None, _THREADS_HELP, low=1, high_is_cpus=True),
        Option("attention", str, "sdpa", "attention implementation", choices=ATTENTIONS),
        Option("kv_cache", bool, True, "keep a KV cache (False: recompute the whole sequence every step)"),
        Option("trust_remote_code", bool, False, "allow a model's own Python code to run", decides_results=False),
    ),
    "tokendice.engines.hf:HFEngine",
    merges_states=True,
    rewinds_states=True,
)
LLAMACPP = EngineKind(
    "llamacpp",
    "llama.cpp through llama-cpp-python, a GGUF file (white-box)",
    True,
    (
        Option("threads", int, None, "llama.cpp threads (default: half the CPUs)", low=1, high_is_cpus=True),
        Option("n_ctx", int, 2048, "context size in tokens", low=16),
    ),
    "tokendice.engines.llamacpp:LlamaCppEngine",
    rewinds_states=True,
)
OPENAI = EngineKind(
    "openai",
    "an OpenAI-compatible server: vLLM, SGLang, llama.cpp's server, OpenAI (black-box)",
    False,
    (
        Option("base_url", str, None, "the server's API root, e.g. http://127.0.0.1:8000/v1", decides_results=False),
        Option("api_key_env", str, "OPENAI_API_KEY", "environment variable holding the API key (never stored)", decides_results=False),
        Option("endpoint", str, "completions", "completions, or chat (the server applies its chat template)", choices=("completions", "chat")),
        Option("timeout", float, 60.0, "seconds to wait for one answer", low=0.001, decides_results=False),
        Option("max_retries", int, 4, "retries on 429, 5xx and connection errors, with backoff", low=0, decides_results=False),
        Option("concurrency", int, 8, "requests in flight at once", low=1, decides_results=False),
        Option("server", str, None, "the server software, when detection from /v1/models is not wanted",
               choices=("llama-cpp-python", "llama.cpp", "vllm", "sglang", "openai", "unknown")),
        Option("sampler_extensions", bool, None, "send top_k, min_p and repetition penalties (OpenAI itself rejects them)"),
        Option("require_logprobs", bool, True, "fail when the server reports no logprobs", decides_results=False),
    ),
    "tokendice.engines.openai:OpenAIEngine",
    per_request_seeds=True,
)
FAKE = EngineKind("fake", "a scripted next-token table (tests and demos)", True, (), merges_states=True, rewinds_states=True)

ENGINE_KINDS: dict[str, EngineKind] = {k.name: k for k in (HF, LLAMACPP, OPENAI)}
ENGINES = tuple(ENGINE_KINDS)


def engine_kind(name: str) -> EngineKind:
    if not isinstance(name, str) or name not in ENGINE_KINDS:
        hint = suggest(name, ENGINES) if isinstance(name, str) else ""
        raise ParameterError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}{hint}", param="engine")
    return ENGINE_KINDS[name]


@dataclass(frozen=True)
class EngineSpec:
    """Which engine runs which model, with which options; validated when built.

    `EngineSpec()` is the embedded model on transformers. `model` is an embedded
    model name, a transformers id or directory, a GGUF path (llamacpp) or the name
    a server serves (openai; None: the one model the server serves).
    `options` holds only what was given; `get(name)` falls back to the default.
    """

    engine: str = "hf"
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, engine: str = "hf", model: str | None = None, **options: Any) -> None:
        kind = engine_kind(engine)
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise ParameterError(f"model must be a non-empty string, got {model!r}", param="model")
        checked = {}
        for name, value in options.items():
            if value is None and kind.takes(name):
                continue  # None means "the default"
            checked[name] = kind.option(name).check(value)
        if kind is OPENAI and not checked.get("base_url"):
            raise ParameterError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)", param="base_url")
        object.__setattr__(self, "engine", engine)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "options", dict(sorted(checked.items())))

    @property
    def kind(self) -> EngineKind:
        return ENGINE_KINDS[self.engine]

    def get(self, name: str) -> Any:
        option = self.kind.option(name)
        return self.options.get(name, option.default)

    def with_(self, **changes: Any) -> EngineSpec:
        """A copy with options (or engine=, model=) changed; None resets an option to its default."""
        engine = changes.pop("engine", self.engine)
        model = changes.pop("model", self.model)
        options = {k: v for k, v in {**self.options, **changes}.items() if v is not None}
        return EngineSpec(engine, model, **options)

    def result_settings(self) -> dict[str, Any]:
        """The options that decide results (given or default), as a run manifest records them."""
        return {o.name: self.options.get(o.name, o.default) for o in self.kind.options if o.decides_results}

    def key(self) -> tuple[Any, ...]:
        """What identifies a loaded engine: defaults filled in, so EngineSpec("hf") and
        EngineSpec("hf", dtype="float32") share one."""
        from tokendice.engines.embedded import DEFAULT_MODEL

        model = None if self.engine != "openai" and self.model == DEFAULT_MODEL else self.model
        return (self.engine, model, tuple((o.name, self.options.get(o.name, o.default)) for o in self.kind.options))

    def __hash__(self) -> int:
        return hash(self.key())

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "model": self.model, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineSpec:
        return cls(data.get("engine", "hf"), data.get("model"), **dict(data.get("options") or {}))

    def __repr__(self) -> str:
        parts = [repr(self.engine)] + ([f"model={self.model!r}"] if self.model else [])
        parts += [f"{k}={v!r}" for k, v in self.options.items()]
        return f"EngineSpec({', '.join(parts)})"

    def check_model(self) -> None:
        """Fail at once, before anything loads, when the model is not here: a transformers id that
        is neither a directory nor in the Hugging Face cache, a GGUF path that does not exist."""
        from tokendice.errors import ModelNotFoundError

        if self.engine == "hf":
            from tokendice.engines.catalog import why_not_here

            problem = why_not_here(self.model)
            if problem:
                raise ModelNotFoundError(problem)
        elif self.engine == "llamacpp" and self.model is not None and not os.path.isfile(os.path.expanduser(self.model)):
            from tokendice.engines.embedded import is_embedded

            if not is_embedded(self.model):
                raise ModelNotFoundError(f"GGUF file not found: {self.model} (the llamacpp engine takes a .gguf path)")

    def load(self) -> Any:
        """The loaded engine (heavy libraries are imported here)."""
        from importlib import import_module

        module, _, name = self.kind.loader.partition(":")
        cls = getattr(import_module(module), name)
        return cls(self.model, **self.options)
