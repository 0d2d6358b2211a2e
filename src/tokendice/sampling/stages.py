"""The stages of a sampler chain: each maps logits to logits, vectorised over rows.

Every stage computes exactly what the transformers logits processor of the same
name computes (transformers 5.x), so tokendice agrees with `generate` bit for bit
on the same logits. `history` is the token sequence so far (prompt and generated),
shape [batch, length], with -1 marking left padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


class Stage:
    """One step of the chain; `name` is what traces show, `setting` its parameter."""

    name: str = "stage"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def setting(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        return f"{self.name}={self.setting}"


@dataclass(frozen=True)
class RepetitionPenalty(Stage):
    """Divide positive (multiply negative) logits of every token already in the sequence."""

    penalty: float
    name = "repetition_penalty"

    @property
    def setting(self) -> str:
        return f"{self.penalty:g}"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        self.apply_(out, history)
        return out

    def apply_(self, logits: torch.Tensor, history: torch.Tensor) -> None:
        """The same, in place: only the entries of tokens in `history` are touched."""
        rows, cols = ((history >= 0) & (history < logits.shape[-1])).nonzero(as_tuple=True)
        ids = history[rows, cols]
        score = logits[rows, ids]  # repeated tokens read the same value and write the same result
        logits[rows, ids] = torch.where(score < 0, score * self.penalty, score / self.penalty)


@dataclass(frozen=True)
class NoRepeatNGram(Stage):
    """Ban every token that would complete an n-gram already present in the sequence."""

    size: int
    name = "no_repeat_ngram_size"

    @property
    def setting(self) -> str:
        return str(self.size)

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        self.apply_(out, history)
        return out

    def apply_(self, logits: torch.Tensor, history: torch.Tensor) -> None:
        """The same, in place: only the banned entries are touched."""
        n = self.size
        if history.shape[-1] < n:
            return
        prefix = history[:, history.shape[-1] + 1 - n :]
        windows = history.unfold(dimension=1, size=n, step=1)
        matches = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)
        matches &= (windows >= 0).all(dim=-1) & (prefix >= 0).all(dim=-1, keepdim=True)
        rows, starts = matches.nonzero(as_tuple=True)
        banned = windows[rows, starts, -1]
        inside = banned < logits.shape[-1]
        logits[rows[inside], banned[inside]] = NEG_INF


@dataclass(frozen=True)
class Temperature(Stage):
    temperature: float
    name = "temperature"

    @property
    def setting(self) -> str:
        return f"{self.temperature:g}"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


@dataclass(frozen=True)
class TopK(Stage):
    """Keep the k highest logits (ties with the k-th are kept, as in transformers)."""

    k: int
    name = "top_k"

    @property
    def setting(self) -> str:
        return str(self.k)

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        k = min(self.k, logits.shape[-1])
        kth = torch.topk(logits, k)[0][..., -1, None]
        return logits.masked_fill(logits < kth, NEG_INF)


@dataclass(frozen=True)
class TopP(Stage):
    """Keep the smallest set of most likely tokens whose mass exceeds p (nucleus)."""

    p: float
    min_tokens_to_keep: int = 1
    name = "top_p"

    @property
    def setting(self) -> str:
        return f"{self.p:g}"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        finite = int(torch.isfinite(logits).sum(dim=-1).max())
        if finite * 4 < vocab:
            # After top-k most entries are -inf and carry no mass: sorting only the
            # finite ones gives the same result at a fraction of the cost.
            width = max(finite, self.min_tokens_to_keep)
            top, top_idx = torch.topk(logits, width, dim=-1)
            sorted_logits, sorted_indices = top.flip(-1), top_idx.flip(-1)
        else:
            sorted_logits, sorted_indices = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - self.p)
        remove_sorted[..., -self.min_tokens_to_keep :] = False
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(1, sorted_indices, ~remove_sorted)
        return logits.masked_fill(~keep, NEG_INF)


@dataclass(frozen=True)
class MinP(Stage):
    """Drop tokens whose probability is below min_p times the top token's."""

    min_p: float
    min_tokens_to_keep: int = 1
    name = "min_p"

    @property
    def setting(self) -> str:
        return f"{self.min_p:g}"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        top = probs.amax(dim=-1, keepdim=True)
        remove = probs < self.min_p * top
        k = min(self.min_tokens_to_keep, probs.shape[-1])
        remove.scatter_(-1, torch.topk(probs, k, dim=-1).indices, False)
        return logits.masked_fill(remove, NEG_INF)


@dataclass(frozen=True)
class Greedy(Stage):
    """Keep only the argmax: the 'sampling' distribution of greedy decoding is one-hot."""

    name = "greedy"

    @property
    def setting(self) -> str:
        return "argmax"

    def __call__(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        best = torch.argmax(logits, dim=-1, keepdim=True)
        out = torch.full_like(logits, NEG_INF)
        return out.scatter(1, best, logits.gather(1, best))
