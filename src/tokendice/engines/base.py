"""The engine interface: where next-token logits come from.

A white-box engine gives raw next-token logits for a batch of token sequences
and keeps incremental state (a KV cache), so tokendice runs its own decoding loop
and sampler chain on top. A state is treated as immutable: `extend` and `select`
return new states and never invalidate the one they were given, so a prefix can
be forked many times (one prefill serving 1,000 samples, a tree search).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import torch

from tokendice.errors import EngineError

if TYPE_CHECKING:
    from tokendice.engines.spec import EngineKind


@runtime_checkable
class Tokenizer(Protocol):
    """The few tokenizer operations tokendice needs."""

    vocab_size: int
    eos_token_ids: tuple[int, ...]

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def apply_chat_template(self, text: str) -> list[int]: ...


@dataclass
class EngineState:
    """Opaque per-engine state for a batch of sequences.

    `lengths` is each row's sequence length (prompt plus extended tokens);
    `payload` belongs to the engine that made it.
    """

    batch_size: int
    lengths: torch.Tensor
    payload: Any = field(repr=False, default=None)


@runtime_checkable
class Engine(Protocol):
    """A white-box source of raw next-token logits (see DESIGN.md)."""

    name: str
    model_id: str
    kind: EngineKind  # capabilities and options (engines/spec.py)
    tokenizer: Tokenizer
    context_length: int | None  # the most tokens a sequence may hold (None: no limit known)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> EngineState:
        """Process prompts (of any lengths) and return a state positioned after each."""
        ...

    def logits(self, state: EngineState) -> torch.Tensor:
        """Raw next-token logits, float32, shape [batch, vocab]."""
        ...

    def extend(self, state: EngineState, tokens: torch.Tensor) -> EngineState:
        """Append tokens: shape [batch] (one each) or [batch, T] (T each)."""
        ...

    def select(self, state: EngineState, rows: torch.Tensor) -> EngineState:
        """Keep, reorder or duplicate rows: the new row j is the old row rows[j]."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a run manifest records about this engine (dtype, threads, ...)."""
        ...


def require_logits(engine: Any, what: str) -> None:
    """Raise EngineError, in one line, when `what` needs next-token logits the engine cannot give."""
    if not engine.kind.white_box:
        raise EngineError(
            f"{what} needs next-token logits, and the {engine.name} engine (a server) only returns sampled "
            "tokens with at most 20 logprobs each: use engine='hf' or engine='llamacpp'"
        )


def left_pad(sequences: Sequence[Sequence[int]], pad: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences of different lengths as one [batch, width] int64 matrix, left-padded with
    `pad`, and the attention mask (1 on tokens, 0 on padding)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for r, seq in enumerate(sequences):
        if len(seq):
            ids[r, width - len(seq) :] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[r, width - len(seq) :] = 1
    return ids, mask


def as_rows(rows: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Normalise a row selection to a 1-D int64 tensor."""
    return torch.as_tensor(rows, dtype=torch.long).reshape(-1)


def as_token_matrix(tokens: torch.Tensor | Sequence[int], batch_size: int) -> torch.Tensor:
    """Normalise `extend` input to shape [batch, T] int64."""
    t = torch.as_tensor(tokens, dtype=torch.long)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if t.dim() != 2 or t.shape[0] != batch_size:
        raise ValueError(f"tokens must have shape [{batch_size}] or [{batch_size}, T], got {tuple(t.shape)}")
    return t
