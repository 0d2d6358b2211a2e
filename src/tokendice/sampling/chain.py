"""The sampler chain: an ordered list of stages, built from `SamplingParams`.

The "hf" order equals transformers' `generate` (repetition penalty, no-repeat
n-gram, then temperature, top-k, top-p, min-p when sampling; argmax when greedy).
The "llamacpp" order applies temperature last, as llama.cpp's default chain does.

`SamplerChain.candidates` computes the same thing on a few tokens per row when a
top-k stage bounds the support, so a sampling step need not touch the whole
vocabulary more than once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokendice.params import SamplingParams
from tokendice.sampling.stages import Greedy, MinP, NoRepeatNGram, RepetitionPenalty, Stage, Temperature, TopK, TopP

TIE_MARGIN = 8  # candidates beyond k, so that ties with the k-th logit are seen


@dataclass(frozen=True)
class Candidates:
    """The tokens a sampler may pick and their processed logits: per row, token ids in
    ascending order, -inf where a candidate has no mass. Either the whole vocabulary or,
    when top-k bounds the support, a few tokens (`SamplerChain.candidates`)."""

    ids: torch.Tensor  # [batch, width] int64
    logits: torch.Tensor  # [batch, width] float32

    @classmethod
    def dense(cls, logits: torch.Tensor) -> Candidates:
        return cls(torch.arange(logits.shape[-1]).expand(logits.shape[0], -1), logits)


@dataclass(frozen=True)
class SamplerChain:
    stages: tuple[Stage, ...]

    @classmethod
    def from_params(cls, params: SamplingParams) -> SamplerChain:
        penalties: list[Stage] = []
        if params.repetition_penalty != 1.0:
            penalties.append(RepetitionPenalty(params.repetition_penalty))
        if params.no_repeat_ngram_size > 0:
            penalties.append(NoRepeatNGram(params.no_repeat_ngram_size))
        if params.greedy:
            return cls(tuple(penalties) + (Greedy(),))
        temperature = [Temperature(params.temperature)] if params.temperature != 1.0 else []
        truncation: list[Stage] = []
        if params.top_k > 0:
            truncation.append(TopK(params.top_k))
        if params.top_p < 1.0:
            truncation.append(TopP(params.top_p))
        if params.min_p > 0:
            truncation.append(MinP(params.min_p))
        if params.order == "hf":
            return cls(tuple(penalties + temperature + truncation))
        return cls(tuple(penalties + truncation + temperature))

    @property
    def greedy(self) -> bool:
        return bool(self.stages) and isinstance(self.stages[-1], Greedy)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.stages]

    def process(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Raw logits [batch, vocab] -> the logits the token is drawn from.

        In greedy mode these are the scores argmax is taken over (the final argmax
        stage is left out), which is what transformers reports as `output_scores`.
        """
        for stage in self.stages:
            if not isinstance(stage, Greedy):
                logits = stage(logits, history)
        return logits

    def candidates(self, logits: torch.Tensor, history: torch.Tensor, restrict: bool = True) -> Candidates:
        """`process`'s output as `Candidates`. With `restrict`, when a top-k stage bounds the
        support, only k + TIE_MARGIN tokens per row are processed after the penalties: their
        logits equal `process`'s, and every other token is -inf there. Chains that cannot be
        restricted, or ties with the k-th logit beyond the margin, give the whole vocabulary."""
        restricted = self._restricted(logits, history) if restrict else None
        return restricted if restricted is not None else Candidates.dense(self.process(logits, history))

    def _restricted(self, logits: torch.Tensor, history: torch.Tensor) -> Candidates | None:
        cut = next((i for i, s in enumerate(self.stages) if isinstance(s, TopK)), None)
        if cut is None:
            return None
        head, top_k, tail = self.stages[:cut], self.stages[cut], self.stages[cut + 1 :]
        penalties = [s for s in head if isinstance(s, (RepetitionPenalty, NoRepeatNGram))]
        monotone = [s for s in head if isinstance(s, Temperature)]
        vocab = logits.shape[-1]
        width = min(top_k.k + TIE_MARGIN, vocab)
        if head != tuple(penalties + monotone) or width == vocab:
            return None
        if penalties:
            logits = logits.clone()
            for stage in penalties:
                stage.apply_(logits, history)
        values, ids = torch.topk(logits, width, dim=-1)  # descending; temperature keeps the order
        for stage in monotone:
            values = stage(values, history)
        if bool((values[:, -1] >= values[:, top_k.k - 1]).any()):
            return None  # a tie with the k-th logit may continue past the candidates
        values = top_k(values, history)
        for stage in tail:
            values = stage(values, history)
        order = ids.argsort(dim=-1)
        return Candidates(ids.gather(1, order), values.gather(1, order))

    def distribution(self, logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Logits of the distribution the next token really follows (one-hot when greedy)."""
        return self.finalize(self.process(logits, history), history)

    def finalize(self, processed: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """`distribution` from already processed logits: the argmax one-hot when greedy."""
        return Greedy()(processed, history) if self.greedy else processed

    def scores_from_stages(self, raw: torch.Tensor, stages: list[torch.Tensor]) -> torch.Tensor:
        """What `process` returns, picked out of `process_stages`' output."""
        outputs = stages[:-1] if self.greedy else stages
        return outputs[-1] if outputs else raw

    def process_stages(self, logits: torch.Tensor, history: torch.Tensor) -> list[torch.Tensor]:
        """Logits after each stage, in order (the last one is the sampling distribution)."""
        out = []
        for stage in self.stages:
            logits = stage(logits, history)
            out.append(logits)
        return out
