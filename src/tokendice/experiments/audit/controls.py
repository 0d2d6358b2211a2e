"""The controls of a determinism audit: every setting that can change a greedy output.

A `Setup` is one point in the control space (engine, dtype, attention
implementation, KV cache, threads, batch size, deterministic algorithms). The
audit's baseline is batch 1, float32, all threads, KV cache on, sdpa attention;
each condition changes one control. `applied(setup)` sets the process-wide
controls (torch threads, deterministic algorithms) for the duration of a run and
restores them afterwards.
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
    """Condition groups from 'batch,threads' (the baseline always runs); None = all of them."""
    if text is None:
        return GROUPS
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    chosen = {BASELINE}
    for name in names:
        name = ALIASES.get(name, name.replace("-", "_"))
        if name == "all":
            return GROUPS
        if name not in GROUPS:
            raise ParameterError(f"conditions must be among {', '.join(GROUPS)} (or all), got {name!r}")
        chosen.add(name)
    return tuple(g for g in GROUPS if g in chosen)


@dataclass(frozen=True)
class Setup:
    """One combination of controls. `threads` None means all threads."""

    engine: str = "hf"
    dtype: str = "float32"
    attention: str = "sdpa"
    kv_cache: bool = True
    threads: int | None = None
    batch_size: int = 1
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.attention not in ATTENTIONS:
            raise ParameterError(f"attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if self.threads is not None and self.threads < 1:
            raise ParameterError(f"threads must be >= 1, got {self.threads}")
        if self.batch_size < 1:
            raise ParameterError(f"batch size must be >= 1, got {self.batch_size}")

    def with_(self, **changes: Any) -> Setup:
        return replace(self, **changes)

    @property
    def model_key(self) -> tuple[str, str, str, bool]:
        """What needs its own loaded model: engine, dtype, attention, KV cache."""
        return (self.engine, self.dtype, self.attention, self.kv_cache)

    def to_dict(self) -> dict[str, Any]:
        """The controls as recorded in a manifest; threads resolved to a number."""
        data = asdict(self)
        data["threads"] = self.threads or default_threads()
        data["all_threads"] = self.threads is None
        return data


@contextmanager
def applied(setup: Setup) -> Iterator[None]:
    """Set torch's thread count and deterministic-algorithms flag; restore both after."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(setup.threads or default_threads())
    torch.use_deterministic_algorithms(setup.deterministic)
    try:
        yield
    except RuntimeError as exc:
        if setup.deterministic and "deterministic" in str(exc):
            raise EngineError(f"--deterministic: an operation has no deterministic implementation: {_first_line(exc)}") from exc
        raise
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
