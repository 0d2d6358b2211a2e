"""The explorer's tree of branches, as a result.

A branch is one whole completion of the prompt. The first is a trace; every other one
left a branch at some step (`fork_step`) by taking another token there (forced), then
continued by sampling. Its probability is exact: the product, over its steps, of each
token's probability under the distribution the sampler draws from (one-hot when greedy),
`params` being the sampler the branch was scored with, so `prob` is how often that
sampler, run from the prompt, would produce exactly this completion (and `n * prob` how
many of n samples would).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.experiments.results import Result, clip, init_fields
from tokendice.experiments.trace.trace import Trace, TraceStep
from tokendice.jsonutil import finite_json


def _logprob(value: Any) -> float:
    return -math.inf if value is None else float(value)


@dataclass
class Branch:
    """One completion of the prompt in the tree, with every step explained."""

    id: int
    parent: int | None  # the branch it left (None: the first)
    fork_step: int | None  # the step where it took another token than its parent
    params: dict[str, Any]  # the sampler its probabilities are under
    steps: list[TraceStep]
    path_logprobs: list[float]  # each token's log-probability under the distribution sampled from (one-hot when greedy)
    finish_reason: str = "length"
    text: str = ""

    @property
    def tokens(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def logprob(self) -> float:
        """log P(this whole completion | prompt) under the branch's sampler."""
        return math.fsum(self.path_logprobs)

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def model_logprob(self) -> float:
        """log P(this whole completion | prompt) under the model (raw logits)."""
        return math.fsum(s.chosen.model_logprob for s in self.steps)

    @property
    def forced(self) -> TraceStep | None:
        return self.steps[self.fork_step] if self.fork_step is not None else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = {"n_tokens": len(self.steps), "prob": self.prob, "logprob": self.logprob, "model_logprob": self.model_logprob}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Branch:
        return cls(**init_fields(cls, data, "steps", "path_logprobs"), steps=[TraceStep.from_dict(s) for s in data["steps"]],
                   path_logprobs=[_logprob(v) for v in data["path_logprobs"]])


@dataclass
class NodeSample:
    """n completions sampled from a node (a branch's prefix of `step` tokens), with their counts
    and exact probabilities given that prefix (sampling distribution)."""

    branch: int
    step: int
    n: int
    seed: int
    params: dict[str, Any]
    prefix: str
    completions: list[dict[str, Any]]  # text, tokens, count, share, ci_low, ci_high, exact_prob (given the prefix)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSample:
        return cls(**init_fields(cls, data))


@dataclass(repr=False)
class Exploration(Result):
    """The tree an explorer session built: its branches and the samples drawn from its nodes."""

    kind: ClassVar[str] = "explore"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "branch", "parent", "fork_step", "forced_token", "text", "prob", "logprob", "model_logprob", "n_tokens", "finish_reason",
    )

    prompt: str
    prompt_ids: list[int]
    engine: str
    model: str
    params: dict[str, Any]  # the sampler now (new branches use it)
    seed: int
    top: int
    chat: bool
    branches: list[Branch] = field(default_factory=list)
    samples: list[NodeSample] = field(default_factory=list)
    run_id: str | None = None

    def branch(self, branch_id: int) -> Branch:
        for b in self.branches:
            if b.id == branch_id:
                return b
        raise KeyError(branch_id)

    def as_trace(self, branch_id: int) -> Trace:
        """A branch as a Trace (what the trace view draws)."""
        from tokendice.params import SamplingParams
        from tokendice.sampling.chain import SamplerChain

        b = self.branch(branch_id)
        stages = SamplerChain.from_params(SamplingParams.from_dict(b.params)).labels
        return Trace(self.prompt, self.prompt_ids, self.engine, self.model, b.params, self.seed, "per-sample", stages,
                     list(b.steps), b.finish_reason, b.text, self.run_id)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **{k: v for k, v in asdict(self).items() if k not in ("branches", "samples")}}
        data["branches"] = [b.to_dict() for b in self.branches]
        data["samples"] = [asdict(s) for s in self.samples]
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exploration:
        return cls(**init_fields(cls, data, "branches", "samples"), branches=[Branch.from_dict(b) for b in data["branches"]],
                   samples=[NodeSample.from_dict(s) for s in data.get("samples", [])])

    def rows(self) -> list[dict[str, Any]]:
        return [{
            "branch": b.id, "parent": b.parent, "fork_step": b.fork_step,
            "forced_token": b.forced.chosen.text if b.forced else None, "text": b.text, "prob": b.prob,
            "logprob": b.logprob, "model_logprob": b.model_logprob, "n_tokens": len(b.steps), "finish_reason": b.finish_reason,
        } for b in self.branches]  # fmt: skip

    def headline(self) -> str:
        best = max(self.branches, key=lambda b: b.logprob, default=None)
        top = f" · most likely {clip(best.text, 40)} p={best.prob:.3g}" if best else ""
        return f"{clip(self.prompt, 40)} · {len(self.branches)} branches{top} · {self.model} ({self.engine})"
