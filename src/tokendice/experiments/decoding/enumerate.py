"""Exact enumeration of completions, best-first over the prefix tree.

Under the sampling distribution (the whole sampler chain), a completion's
probability is the product of its steps' probabilities. The search expands the
most probable unexpanded prefix first, so completions come out roughly in order
of probability, and stops when the found completions hold the requested mass or
the expansion budget runs out. Every number is exact: found mass + unexplored
mass = 1 (up to float rounding), and the report says how much is left where.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch

from tokendice.engines.base import Engine, left_pad
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.results import Result, clip
from tokendice.jsonutil import finite_json
from tokendice.params import SamplingParams
from tokendice.sampling.chain import SamplerChain

MAX_CHILDREN = 256  # children kept per expanded prefix; the rest is counted as pruned mass


@dataclass(frozen=True)
class ExactCompletion:
    tokens: tuple[int, ...]
    text: str
    logprob: float  # under the sampling distribution
    model_logprob: float  # under the model distribution (product of raw-softmax probabilities)
    finish_reason: str

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def model_prob(self) -> float:
        return math.exp(self.model_logprob)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tokens": list(self.tokens), "prob": self.prob, "logprob": self.logprob,
                "model_logprob": self.model_logprob, "finish_reason": self.finish_reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExactCompletion:
        return cls(tuple(data["tokens"]), data["text"], _logprob(data["logprob"]), _logprob(data["model_logprob"]), data["finish_reason"])


def _logprob(value: Any) -> float:
    """A log-probability read back from JSON, where -inf was written as null."""
    return -math.inf if value is None else float(value)


@dataclass(repr=False)
class Enumeration(Result):
    """Every completion of a prompt with its exact probability under the sampling distribution,
    best first, and where the rest of the mass is: not yet expanded (frontier) or pruned.

    `to_dataframe()`: one row per completion, most probable first (columns `COLUMNS`).
    """

    kind: ClassVar[str] = "enumerate"
    COLUMNS: ClassVar[tuple[str, ...]] = ("rank", "text", "prob", "logprob", "model_prob", "model_logprob", "finish_reason", "n_tokens", "tokens")

    completions: list[ExactCompletion] = field(default_factory=list)
    expanded: int = 0  # prefixes whose next-token distribution was computed
    frontier_mass: float = 0.0  # mass of prefixes found but not expanded
    pruned_mass: float = 0.0  # mass of children not kept (below min_prob or past MAX_CHILDREN)
    target_mass: float = 0.99
    stopped_because: str = ""
    prompt: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    engine: str = ""
    model: str = ""
    run_id: str | None = None

    @property
    def found_mass(self) -> float:
        return math.fsum(c.prob for c in self.completions)

    @property
    def unexplored_mass(self) -> float:
        """1 - found mass: the probability of every completion not listed."""
        return max(0.0, 1.0 - self.found_mass)

    def distribution(self) -> dict[tuple[int, ...], float]:
        return {c.tokens: c.prob for c in self.completions}

    def to_dict(self) -> dict[str, Any]:
        return finite_json({
            "kind": self.kind,
            "run_id": self.run_id,
            "prompt": self.prompt,
            "params": self.params,
            "engine": self.engine,
            "model": self.model,
            "distribution": "sampling (after the whole sampler chain)",
            "target_mass": self.target_mass,
            "found_mass": self.found_mass,
            "unexplored_mass": self.unexplored_mass,
            "frontier_mass": self.frontier_mass,
            "pruned_mass": self.pruned_mass,
            "expanded_prefixes": self.expanded,
            "stopped_because": self.stopped_because,
            "completions": [c.to_dict() for c in self.completions],
        })  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Enumeration:
        return cls(
            completions=[ExactCompletion.from_dict(c) for c in data["completions"]], expanded=data["expanded_prefixes"],
            frontier_mass=data["frontier_mass"], pruned_mass=data["pruned_mass"], target_mass=data["target_mass"],
            stopped_because=data["stopped_because"], prompt=data.get("prompt", ""), params=dict(data.get("params") or {}),
            engine=data.get("engine", ""), model=data.get("model", ""), run_id=data.get("run_id"),
        )  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"rank": i, "text": c.text, "prob": c.prob, "logprob": c.logprob, "model_prob": c.model_prob, "model_logprob": c.model_logprob,
             "finish_reason": c.finish_reason, "n_tokens": len(c.tokens), "tokens": list(c.tokens)}
            for i, c in enumerate(self.completions, 1)
        ]  # fmt: skip

    def headline(self) -> str:
        top = f" · top {clip(self.completions[0].text, 30)} p={self.completions[0].prob:.4f}" if self.completions else ""
        model = f" · {self.model}" if self.model else ""
        return (f"{clip(self.prompt, 40)} · {len(self.completions)} completions hold {self.found_mass:.4f} of the mass "
                f"(target {self.target_mass:g}){top}{model}")  # fmt: skip


def enumerate_completions(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    mass: float = 0.99,
    max_nodes: int = 2000,
    min_prob: float = 1e-7,
    batch_size: int = 32,
    max_cached_rows: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> Enumeration:
    """Best-first enumeration until `mass` is found or `max_nodes` prefixes were expanded.

    Each expanded batch of prefixes keeps its engine state, so a child is computed
    by extending its parent's state by one token; states beyond `max_cached_rows`
    rows are dropped (oldest first) and their children recomputed from the prompt.
    """
    if not 0 < mass <= 1:
        raise ParameterError(f"mass must be in (0, 1], got {mass}")
    if max_nodes < 1:
        raise ParameterError(f"max_nodes must be >= 1, got {max_nodes}")
    if not engine.kind.white_box:
        raise EngineError(f"exact enumeration needs next-token logits; the {engine.name} engine only returns samples")
    chain = SamplerChain.from_params(params)
    eos = set(engine.tokenizer.eos_token_ids) if params.stop_at_eos else set()
    result = Enumeration(target_mass=mass)
    states = _StateCache(engine, list(prompt_ids), max_cached_rows)
    log_min_prob = math.log(min_prob)
    heap: list[_Node] = [_Node(-0.0, 0, (), 0.0, 0.0, None)]
    counter = 1
    while heap:
        if result.found_mass >= mass:
            result.stopped_because = "reached the target mass"
            break
        if result.expanded >= max_nodes:
            result.stopped_because = f"expansion budget of {max_nodes} prefixes spent"
            break
        batch = [heapq.heappop(heap) for _ in range(min(batch_size, len(heap), max_nodes - result.expanded))]
        for node, ref, (log_dist, model_logp) in states.expand(chain, batch):
            result.expanded += 1
            probs = log_dist.exp()
            kept = torch.nonzero(probs > 0).squeeze(1)
            order = kept[torch.argsort(probs[kept], descending=True)]
            child_logprobs = (node.logprob + log_dist[order]).tolist()
            child_model = (node.model_logprob + model_logp[order]).tolist()
            for rank, token in enumerate(order.tolist()):
                if rank >= MAX_CHILDREN or child_logprobs[rank] < log_min_prob:
                    result.pruned_mass += float(math.exp(node.logprob) * probs[order[rank:]].sum())
                    break
                child = node.tokens + (token,)
                if token in eos or len(child) >= params.max_new_tokens:
                    reason = "eos" if token in eos else "length"
                    text = engine.tokenizer.decode(list(child))
                    result.completions.append(ExactCompletion(child, text, child_logprobs[rank], child_model[rank], reason))
                else:
                    heapq.heappush(heap, _Node(-child_logprobs[rank], counter, child, child_logprobs[rank], child_model[rank], ref))
                    counter += 1
        if progress is not None:
            progress(len(batch))
    else:
        result.stopped_because = "explored every prefix above min_prob"
    result.frontier_mass = math.fsum(math.exp(h.logprob) for h in heap)
    result.completions.sort(key=lambda c: -c.logprob)
    return result


@dataclass(order=True)
class _Node:
    priority: float  # -logprob: heapq pops the most probable prefix first
    counter: int  # tie-break, keeps pops deterministic
    tokens: tuple[int, ...] = field(compare=False)
    logprob: float = field(compare=False)
    model_logprob: float = field(compare=False)
    parent: tuple[int, int] | None = field(compare=False)  # (state id, row) holding the parent prefix


class _StateCache:
    """Engine states of expanded prefixes, so children cost one token each."""

    def __init__(self, engine: Engine, prompt: list[int], max_rows: int) -> None:
        self.engine, self.prompt, self.max_rows = engine, prompt, max_rows
        self.prompt_state = engine.prefill([prompt])
        self.states: OrderedDict[int, tuple[Any, torch.Tensor]] = OrderedDict()
        self.next_id = 0

    def expand(self, chain: SamplerChain, nodes: list[_Node]):
        """Yield (node, state ref of the node, (sampling log-dist, model log-dist)) for each node."""
        groups: dict[Any, list[_Node]] = {}
        for node in nodes:
            parent = node.parent if node.parent is not None and node.parent[0] in self.states else None
            groups.setdefault(parent[0] if parent else ("prompt", len(node.tokens)), []).append(node)
        extended = [g for k, g in groups.items() if isinstance(k, int)]
        if extended and self.engine.kind.merges_states:
            # one forward pass for every cached parent: merge the parents' rows, extend by one token
            parts = [self._parents(g) for g in extended]
            parent_state = self.engine.merge([p[0] for p in parts])
            parent_history = left_pad([row for p in parts for row in p[1].tolist()])[0]  # -1 pads: ignored by the penalties
            group = [n for g in extended for n in g]
            yield from self._extend(chain, group, parent_state, parent_history)
        else:
            for g in extended:
                yield from self._extend(chain, g, *self._parents(g))
        for key, group in groups.items():
            if isinstance(key, int):
                continue
            # the root, or a parent whose state was dropped: recompute from the prompt
            length = key[1]
            state = self.engine.select(self.prompt_state, torch.zeros(len(group), dtype=torch.long))
            tokens = torch.as_tensor([list(n.tokens) for n in group], dtype=torch.long).reshape(len(group), length)
            if length:
                state = self.engine.extend(state, tokens)
            history = torch.cat([torch.as_tensor([self.prompt] * len(group), dtype=torch.long), tokens], dim=1)
            yield from self._distributions(chain, group, state, history)

    def _parents(self, group: list[_Node]) -> tuple[Any, torch.Tensor]:
        parent_state, parent_history = self.states[group[0].parent[0]]
        rows = torch.as_tensor([n.parent[1] for n in group], dtype=torch.long)
        return self.engine.select(parent_state, rows), parent_history[rows]

    def _extend(self, chain: SamplerChain, group: list[_Node], parent_state: Any, parent_history: torch.Tensor):
        last = torch.as_tensor([n.tokens[-1] for n in group], dtype=torch.long)
        state = self.engine.extend(parent_state, last)
        history = torch.cat([parent_history, last.unsqueeze(1)], dim=1)
        yield from self._distributions(chain, group, state, history)

    def _distributions(self, chain: SamplerChain, group: list[_Node], state: Any, history: torch.Tensor):
        raw = self.engine.logits(state)
        sampling = torch.log_softmax(chain.distribution(raw, history).double(), dim=-1)
        model = torch.log_softmax(raw.double(), dim=-1)
        state_id = self._keep(state, history)
        for j, node in enumerate(group):
            yield node, (state_id, j), (sampling[j], model[j])

    def _keep(self, state: Any, history: torch.Tensor) -> int:
        state_id, self.next_id = self.next_id, self.next_id + 1
        self.states[state_id] = (state, history)
        while sum(s.batch_size for s, _ in self.states.values()) > self.max_rows and len(self.states) > 1:
            self.states.popitem(last=False)
        return state_id


def next_token_distribution(
    engine: Engine, prompt_ids: Sequence[int], prefix: Sequence[int], params: SamplingParams, top: int = 50
) -> tuple[dict[int, float], dict[int, float]]:
    """After prompt + prefix: (sampling probabilities of the tokens with mass, model probabilities of the same
    and of the model's `top` most likely tokens). The prefix is fed as generated tokens after the prompt,
    as the samples were."""
    chain = SamplerChain.from_params(params)
    state = engine.prefill([list(prompt_ids)])
    if prefix:
        state = engine.extend(state, torch.as_tensor([list(prefix)], dtype=torch.long))
    history = torch.as_tensor([list(prompt_ids) + list(prefix)], dtype=torch.long)
    raw = engine.logits(state)
    sampling = torch.softmax(chain.distribution(raw, history).double(), dim=-1)[0]
    model = torch.softmax(raw.double(), dim=-1)[0]
    with_mass = torch.nonzero(sampling > 0).squeeze(1).tolist()
    likely = torch.topk(model, min(top, model.shape[-1])).indices.tolist()
    return {t: float(sampling[t]) for t in with_mass}, {t: float(model[t]) for t in set(with_mass) | set(likely)}
