"""The sampler chain: an ordered list of stages, built from `SamplingParams`.

The "hf" order equals transformers' `generate` (repetition penalty, no-repeat
n-gram, then temperature, top-k, top-p, min-p when sampling; argmax when greedy).
The "llamacpp" order applies temperature last, as llama.cpp's default chain does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokendice.params import SamplingParams
from tokendice.sampling.stages import Greedy, MinP, NoRepeatNGram, RepetitionPenalty, Stage, Temperature, TopK, TopP


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
