"""An explorer session: one loaded engine and a tree of branches grown by hand.

Every branch keeps its engine state (the KV cache after its tokens). A fork at step k
cuts that cache back to the first k tokens (`Engine.rewind`: no recompute), computes the
step's distribution, takes the chosen token, and continues by sampling, step by step,
handing each step to a callback as soon as it is decoded (the explorer streams them).
A tree reopened from the store has no states: a branch's is rebuilt on first use, by one
prefill of its tokens.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from tokendice.analysis import Frequency
from tokendice.engines.base import Engine, EngineState
from tokendice.errors import ParameterError
from tokendice.experiments.decoding.branching import branch_sample
from tokendice.experiments.explore.tree import Branch, Exploration, NodeSample
from tokendice.experiments.trace.trace import TraceStep, build_step
from tokendice.params import SamplingParams
from tokendice.sampling.chain import SamplerChain
from tokendice.sampling.rng import draw

OnStep = Callable[[TraceStep], None]


@dataclass
class _Held:
    """A branch's engine state and the tokens it holds (prompt included), for penalties."""

    state: EngineState
    history: torch.Tensor  # [1, len] prompt + generated tokens fed so far
    generated: int  # generated tokens the state holds


class ExploreSession:
    """The tree of one prompt on one engine; operations are serialised (one engine, one lock)."""

    def __init__(self, engine: Engine, tree: Exploration, on_change: Callable[[Exploration], None] | None = None) -> None:
        if not engine.kind.white_box:
            raise ParameterError("the explorer needs next-token logits: use engine='hf' or engine='llamacpp'", param="engine")
        self.engine = engine
        self.tree = tree
        self.on_change = on_change
        self.lock = threading.RLock()
        self._held: dict[int, _Held] = {}
        self._prompt: _Held | None = None

    # -- what a user does --------------------------------------------------------------------

    @property
    def params(self) -> SamplingParams:
        return SamplingParams.from_dict(self.tree.params)

    def set_params(self, params: SamplingParams) -> None:
        """The sampler for the branches grown from now on (and the step views)."""
        with self.lock:
            self.tree.params = params.to_dict()
            self._changed()

    def start(self, on_step: OnStep | None = None) -> Branch:
        """The first branch: a trace of the prompt with the current sampler."""
        with self.lock:
            if self.tree.branches:
                raise ParameterError("the tree has its first branch already: fork it", param="branch")
            prompt = self._prompt_state()
            branch = Branch(0, None, None, self.tree.params, [], [])
            self._walk(branch, prompt.state, prompt.history, 0, on_step)
            self._add(branch)
            return branch

    def fork(self, branch_id: int, step: int, token_id: int, on_step: OnStep | None = None) -> Branch:
        """A new branch: `branch_id`'s first `step` tokens, then `token_id`, then sampled to the end."""
        with self.lock:
            parent = self._branch(branch_id)
            if not isinstance(step, int) or not 0 <= step < len(parent.steps):
                raise ParameterError(f"step must be in [0, {len(parent.steps) - 1}] for branch {branch_id}, got {step!r}", param="step")
            vocab = self.engine.tokenizer.vocab_size
            if not isinstance(token_id, int) or not 0 <= token_id < vocab:
                raise ParameterError(f"token_id must be a token of the vocabulary, in [0, {vocab}), got {token_id!r}", param="token_id")
            params = self.params
            chain = SamplerChain.from_params(params)
            branch = Branch(len(self.tree.branches), parent.id, step, self.tree.params, [], [])
            if parent.params == self.tree.params:
                branch.steps, branch.path_logprobs = list(parent.steps[:step]), list(parent.path_logprobs[:step])
            else:  # the parent was scored under another sampler: score the shared steps under this one
                self._rescore_prefix(branch, parent.tokens[:step], chain)
            base = self._at_step(parent, step)
            raw = self.engine.logits(base.state)
            forced = self._step(branch, chain, raw, base.history, step, token_id)
            if on_step is not None:
                on_step(forced)
            if self._ends(token_id, step, params):
                branch.finish_reason = "eos" if self._is_eos(token_id, params) else "length"
                self._finish(branch, _Held(base.state, base.history, step))
            else:
                state = self.engine.extend(base.state, torch.tensor([token_id]))
                history = torch.cat([base.history, torch.tensor([[token_id]])], dim=1)
                self._walk(branch, state, history, step + 1, on_step)
            self._add(branch)
            return branch

    def step_view(self, branch_id: int, step: int, params: SamplingParams | None = None, top: int | None = None) -> TraceStep:
        """The branch's step under `params` (default: the current sampler): its top tokens with the
        probability after every stage of the chain, recomputed from the model's logits."""
        with self.lock:
            branch = self._branch(branch_id)
            if not 0 <= step < len(branch.steps):
                raise ParameterError(f"step must be in [0, {len(branch.steps) - 1}], got {step!r}", param="step")
            chain = SamplerChain.from_params(params or self.params)
            base = self._at_step(branch, step)
            raw = self.engine.logits(base.state)
            stages = chain.process_stages(raw, base.history)
            scores = chain.scores_from_stages(raw, stages)
            return build_step(step, raw[0], scores[0], [s[0] for s in stages], branch.tokens[step], chain.labels,
                              top or self.tree.top, self.engine.tokenizer.decode)  # fmt: skip

    def sample(self, branch_id: int, step: int, n: int, seed: int | None = None) -> NodeSample:
        """n completions sampled (branching sampler, current sampler) from the node made of the
        branch's first `step` tokens, with counts and exact probabilities given that prefix."""
        with self.lock:
            branch = self._branch(branch_id)
            if not 0 <= step <= len(branch.steps):
                raise ParameterError(f"step must be in [0, {len(branch.steps)}], got {step!r}", param="step")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ParameterError(f"n must be an integer >= 1, got {n!r}", param="n")
            params = self.params
            left = params.max_new_tokens - step
            if left < 1:
                raise ParameterError(f"no tokens left to sample after step {step} (max_new_tokens {params.max_new_tokens})", param="step")
            seed = self.tree.seed if seed is None else seed
            prefix = branch.tokens[:step]
            node = self._at_step(branch, step)
            drawn = branch_sample(self.engine, (), params.with_(max_new_tokens=left), n, seed, start=(node.state, node.history))
            counts: Counter[tuple[int, ...]] = Counter(tuple(c.tokens) for c in drawn)
            logprob = {tuple(c.tokens): math.fsum(c.sampling_logprobs) for c in drawn}
            decode = self.engine.tokenizer.decode
            rows = []
            for tokens, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                f = Frequency.of(count, n)
                rows.append({"text": decode(list(tokens)), "tokens": list(tokens), "count": count, "share": f.share,
                             "ci_low": f.low, "ci_high": f.high, "exact_prob": math.exp(logprob[tokens])})  # fmt: skip
            result = NodeSample(branch_id, step, n, seed, self.tree.params, decode(prefix), rows)
            self.tree.samples.append(result)
            self._changed()
            return result

    # -- internals ---------------------------------------------------------------------------

    def _branch(self, branch_id: int) -> Branch:
        try:
            return self.tree.branch(branch_id)
        except KeyError:
            raise ParameterError(f"no branch {branch_id!r} in this tree (it has {len(self.tree.branches)})", param="branch") from None

    def _prompt_state(self) -> _Held:
        if self._prompt is None:
            ids = list(self.tree.prompt_ids)
            self._prompt = _Held(self.engine.prefill([ids]), torch.tensor([ids]), 0)
        return self._prompt

    def _held_of(self, branch: Branch) -> _Held:
        """The branch's state; rebuilt by one prefill for a tree read back from the store."""
        held = self._held.get(branch.id)
        if held is None:
            fed = list(self.tree.prompt_ids) + branch.tokens[:-1]
            held = _Held(self.engine.prefill([fed]), torch.tensor([fed]), len(branch.tokens) - 1)
            self._held[branch.id] = held
        return held

    def _at_step(self, branch: Branch, step: int) -> _Held:
        """A state holding the prompt and the branch's first `step` tokens, its logits computed:
        the branch's cache cut back to `step - 1` tokens, then its token `step - 1` fed."""
        if step == 0:
            return self._prompt_state()
        held = self._held_of(branch)
        prompt_len = len(self.tree.prompt_ids)
        if self.engine.kind.rewinds_states:
            state = self.engine.rewind(held.state, held.generated - (step - 1))  # type: ignore[attr-defined]
        else:
            state = self.engine.prefill([list(self.tree.prompt_ids) + branch.tokens[: step - 1]])
        state = self.engine.extend(state, torch.tensor([branch.tokens[step - 1]]))
        return _Held(state, held.history[:, : prompt_len + step], step)

    def _step(self, branch: Branch, chain: SamplerChain, raw: torch.Tensor, history: torch.Tensor, step: int, token: int) -> TraceStep:
        stages = chain.process_stages(raw, history)
        scores = chain.scores_from_stages(raw, stages)
        traced = build_step(step, raw[0], scores[0], [s[0] for s in stages], token, chain.labels, self.tree.top, self.engine.tokenizer.decode)
        dist = torch.log_softmax(chain.finalize(scores, history).double(), dim=-1)
        branch.steps.append(traced)
        branch.path_logprobs.append(float(dist[0, token]))
        return traced

    def _walk(self, branch: Branch, state: EngineState, history: torch.Tensor, first: int, on_step: OnStep | None) -> None:
        """Sample the branch from step `first` to its end (per-sample stream: seed, branch id)."""
        params = self.params
        chain = SamplerChain.from_params(params)
        ids = np.asarray([branch.id], dtype=np.int64)
        step = first
        while step < params.max_new_tokens:
            raw = self.engine.logits(state)
            scores = chain.scores_from_stages(raw, chain.process_stages(raw, history))
            token = int(draw(scores, chain.greedy, "per-sample", self.tree.seed, ids, step)[0])
            traced = self._step(branch, chain, raw, history, step, token)
            if on_step is not None:
                on_step(traced)
            if self._ends(token, step, params):
                branch.finish_reason = "eos" if self._is_eos(token, params) else "length"
                break
            state = self.engine.extend(state, torch.tensor([token]))
            history = torch.cat([history, torch.tensor([[token]])], dim=1)
            step += 1
        self._finish(branch, _Held(state, history, len(branch.steps) - 1))

    def _rescore_prefix(self, branch: Branch, tokens: Sequence[int], chain: SamplerChain) -> None:
        held = self._prompt_state()
        state, history = held.state, held.history
        for step, token in enumerate(tokens):
            self._step(branch, chain, self.engine.logits(state), history, step, int(token))
            state = self.engine.extend(state, torch.tensor([int(token)]))
            history = torch.cat([history, torch.tensor([[int(token)]])], dim=1)

    def _is_eos(self, token: int, params: SamplingParams) -> bool:
        return params.stop_at_eos and token in self.engine.tokenizer.eos_token_ids

    def _ends(self, token: int, step: int, params: SamplingParams) -> bool:
        return self._is_eos(token, params) or step + 1 >= params.max_new_tokens

    def _finish(self, branch: Branch, held: _Held) -> None:
        branch.text = self.engine.tokenizer.decode(branch.tokens)
        self._held[branch.id] = held

    def _add(self, branch: Branch) -> None:
        self.tree.branches.append(branch)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.tree)
