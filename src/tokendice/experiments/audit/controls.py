"""The controls of a determinism audit: every setting that can change a greedy output.

A `Setup` is one point in the control space (engine, dtype, attention
implementation, KV cache, threads, batch size, deterministic algorithms). The
audit's baseline is the engine spec's settings (by default batch 1, float32,
torch's default thread count, KV cache on, sdpa attention); each condition changes
one control. `applied(setup, engine)` sets the thread count and the
deterministic-algorithms flag for the duration of a run and restores them
afterwards. The thread count belongs to the engine where the engine owns one (the
transformers engine sets torch's before every forward pass); an engine that does
not (a FakeEngine) runs on torch's global count, which is set instead.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator, Sequence

from tokendice.engines.spec import ATTENTIONS, DTYPES
from tokendice.engines.threads import default_threads
from tokendice.errors import EngineError, ParameterError

BASELINE, BATCH, THREADS, DTYPE, ATTENTION, KV_CACHE, ENGINES = (
    "baseline", "batch", "threads", "dtype", "attention", "kv_cache", "engines"
)
GROUPS = (BASELINE, BATCH, DTYPE, THREADS, KV_CACHE, ATTENTION, ENGINES)
"""Condition groups, in the order they run; each one (but the baseline) varies one control."""
ALIASES = {"kv-cache": KV_CACHE, "cache": KV_CACHE, "kv": KV_CACHE, "attn": ATTENTION, "engine": ENGINES,
           "thread": THREADS, "dtypes": DTYPE, "batch-size": BATCH, "batches": BATCH}
BATCH_SIZES = (1, 2, 8, 32)


def parse_groups(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Condition groups from 'batch,threads' or ["batch", "threads"] (the baseline always runs);
    None = all of them."""
    if text is None:
        return GROUPS
    if isinstance(text, str):
        names = text.split(",")
    elif isinstance(text, (list, tuple)) and all(isinstance(n, str) for n in text):
        names = list(text)
    else:
        raise ParameterError(f"conditions must be a comma-separated string or a list of names, got {text!r}", param="conditions")
    chosen = {BASELINE}
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        name = ALIASES.get(name, name.replace("-", "_"))
        if name == "all":
            return GROUPS
        if name not in GROUPS:
            from tokendice.errors import suggest

            raise ParameterError(
                f"conditions must be among {', '.join(GROUPS)} (or all), got {raw.strip()!r}{suggest(name, GROUPS)}",
                param="conditions",
            )
        chosen.add(name)
    return tuple(g for g in GROUPS if g in chosen)


@dataclass(frozen=True)
class Setup:
    """One combination of controls. `threads` None means torch's default (the physical cores)."""

    engine: str = "hf"
    dtype: str = "float32"
    attention: str = "sdpa"
    kv_cache: bool = True
    threads: int | None = None
    batch_size: int = 1
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}", param="dtype")
        if self.attention not in ATTENTIONS:
            raise ParameterError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}", param="attention")
        if self.threads is not None and self.threads < 1:
            raise ParameterError(f"threads must be >= 1, got {self.threads}", param="threads")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {self.batch_size}", param="batch_size")

    def with_(self, **changes: Any) -> Setup:
        return replace(self, **changes)

    @property
    def resolved_threads(self) -> int:
        return self.threads or default_threads()

    @property
    def model_key(self) -> tuple[str, str, str, bool]:
        """What needs its own loaded model: engine, dtype, attention, KV cache."""
        return (self.engine, self.dtype, self.attention, self.kv_cache)

    def to_dict(self) -> dict[str, Any]:
        """The controls as recorded in a manifest; threads resolved to a number, and
        `threads_default` saying whether that number is torch's default."""
        data = asdict(self)
        data["threads"] = self.resolved_threads
        data["threads_default"] = self.threads is None
        return data


@contextmanager
def applied(setup: Setup, engine: Any = None) -> Iterator[None]:
    """Run with `setup`'s thread count and deterministic-algorithms flag; restore both after.

    The thread count goes to the engine when it owns one (`engine.threads`: the transformers
    engine sets torch's before every forward pass), else to torch's global count."""
    import torch

    deterministic, torch_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    threads = setup.resolved_threads
    owned = engine is not None and hasattr(engine, "threads")
    if owned:
        saved = (engine.threads, getattr(engine, "threads_given", None))
        if engine.threads != threads:
            engine.threads = threads
            if saved[1] is not None:
                engine.threads_given = setup.threads is not None
    else:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(setup.deterministic)
    try:
        yield
    except RuntimeError as exc:
        if setup.deterministic and "deterministic" in str(exc):
            raise EngineError(f"deterministic=True: an operation has no deterministic implementation: {_first_line(exc)}") from exc
        raise
    finally:
        if owned:
            engine.threads = saved[0]
            if saved[1] is not None:
                engine.threads_given = saved[1]
        torch.set_num_threads(torch_threads)  # an engine that owns its count sets torch's at every forward
        torch.use_deterministic_algorithms(deterministic)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
