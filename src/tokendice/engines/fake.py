"""FakeEngine: a scripted, exactly known next-token distribution for tests and demos.

The distribution is a function of the token sequence (prompt and generated
tokens), so sampling, enumeration, statistics and storage can be checked against
values computed by hand. An optional `noise` hook adds batch-size-dependent
perturbations to the logits, to imitate kernels that are not batch-invariant.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from tokendice.engines.base import EngineState, as_rows, as_token_matrix
from tokendice.engines.spec import FAKE
from tokendice.errors import ParameterError

NextLogits = Callable[[tuple[int, ...], tuple[int, ...]], Sequence[float]]
"""(prompt ids, generated ids) -> raw logits over the vocabulary."""

LogitNoise = Callable[[int, tuple[int, ...]], Sequence[float] | None]
"""(batch size, full sequence) -> additive logit noise, or None for none."""


class FakeTokenizer:
    """A tokenizer over a small list of string tokens (longest match first)."""

    def __init__(self, vocab: Sequence[str], eos_token_ids: Sequence[int]) -> None:
        if len(set(vocab)) != len(vocab):
            raise ParameterError("FakeTokenizer vocabulary has duplicate tokens")
        self.vocab = list(vocab)
        self.vocab_size = len(vocab)
        self.eos_token_ids = tuple(eos_token_ids)
        self._by_text = {t: i for i, t in enumerate(self.vocab) if t}
        self._longest = max((len(t) for t in self._by_text), default=1)

    def encode(self, text: str) -> list[int]:
        ids, pos = [], 0
        while pos < len(text):
            for size in range(min(self._longest, len(text) - pos), 0, -1):
                tid = self._by_text.get(text[pos : pos + size])
                if tid is not None:
                    ids.append(tid)
                    pos += size
                    break
            else:
                raise ParameterError(f"FakeTokenizer cannot encode {text[pos:]!r}")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def apply_chat_template(self, text: str) -> list[int]:
        return self.encode(text)


class FakeEngine:
    """A white-box engine whose logits come from a Python function of the sequence."""

    name = "fake"
    kind = FAKE
    context_length: int | None = None

    def __init__(
        self,
        vocab: Sequence[str],
        next_logits: NextLogits,
        eos_token_ids: Sequence[int] = (0,),
        model_id: str = "fake",
        noise: LogitNoise | None = None,
    ) -> None:
        self.tokenizer = FakeTokenizer(vocab, eos_token_ids)
        self.model_id = model_id
        self._next_logits = next_logits
        self._noise = noise
        self.forward_rows = 0  # how many (row, step) logits were computed: a cost counter for tests

    @classmethod
    def from_table(
        cls,
        vocab: Sequence[str],
        table: Mapping[tuple[str, ...], Mapping[str, float]],
        eos: str = "<eos>",
        model_id: str = "fake-table",
    ) -> FakeEngine:
        """Probabilities keyed by the generated tokens so far (as strings); unknown prefixes end."""
        index = {t: i for i, t in enumerate(vocab)}
        eos_id = index[eos]

        def next_logits(prompt: tuple[int, ...], generated: tuple[int, ...]) -> list[float]:
            probs = table.get(tuple(vocab[i] for i in generated), {eos: 1.0})
            logits = [-math.inf] * len(vocab)
            for tok, p in probs.items():
                logits[index[tok]] = math.log(p) if p > 0 else -math.inf
            return logits

        return cls(vocab, next_logits, eos_token_ids=(eos_id,), model_id=model_id)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> EngineState:
        rows = [(tuple(int(t) for t in p), ()) for p in prompts]
        return self._state(rows)

    def logits(self, state: EngineState) -> torch.Tensor:
        rows = state.payload
        self.forward_rows += len(rows)
        out = torch.empty(len(rows), self.tokenizer.vocab_size, dtype=torch.float32)
        for r, (prompt, generated) in enumerate(rows):
            values = torch.tensor(list(self._next_logits(prompt, generated)), dtype=torch.float64)
            if self._noise is not None:
                noise = self._noise(len(rows), prompt + generated)
                if noise is not None:
                    values = values + torch.tensor(list(noise), dtype=torch.float64)
            out[r] = values.to(torch.float32)
        return out

    def extend(self, state: EngineState, tokens: torch.Tensor) -> EngineState:
        tokens = as_token_matrix(tokens, state.batch_size)
        rows = [(p, g + tuple(int(t) for t in tokens[r])) for r, (p, g) in enumerate(state.payload)]
        return self._state(rows)

    def select(self, state: EngineState, rows: torch.Tensor) -> EngineState:
        return self._state([state.payload[int(r)] for r in as_rows(rows)])

    def rewind(self, state: EngineState, tokens: int) -> EngineState:
        """The state without the last `tokens` generated tokens of every row."""
        if tokens <= 0:
            return state
        rows = []
        for prompt, generated in state.payload:
            keep = len(generated) - tokens
            rows.append((prompt, generated[:keep]) if keep >= 0 else (prompt[: len(prompt) + keep], ()))
        return self._state(rows)

    def merge(self, states: Sequence[EngineState]) -> EngineState:
        return self._state([row for s in states for row in s.payload])

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "model": self.model_id, "vocab_size": self.tokenizer.vocab_size}

    @staticmethod
    def _state(rows: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> EngineState:
        lengths = torch.tensor([len(p) + len(g) for p, g in rows], dtype=torch.long)
        return EngineState(batch_size=len(rows), lengths=lengths, payload=rows)
