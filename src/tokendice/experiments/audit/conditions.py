"""The conditions of a determinism audit, and one run of the audited prompt under a setup.

Each condition changes one control of the baseline (by default batch 1, float32,
torch's default thread count, KV cache on, sdpa). A batch condition places the
prompt among other prompts of different lengths, so that it is left-padded and
shares every kernel call with them, as on a busy server. A run records, for the
audited row, the chosen tokens and, at every step, the model's top two tokens and
the model log-probability of the reference (baseline) token, so drift is measured
along the baseline's path.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from tokendice.engines.base import Engine, Tokenizer, left_pad
from tokendice.engines.threads import default_threads
from tokendice.experiments.audit.controls import (  # noqa: F401  (GROUPS, parse_groups, BATCH_SIZES: re-exported)
    ATTENTION,
    ATTENTIONS,
    BASELINE,
    BATCH,
    BATCH_SIZES,
    DTYPE,
    DTYPES,
    ENGINES,
    GROUPS,
    KV_CACHE,
    THREADS,
    Setup,
    parse_groups,
)
from tokendice.experiments.audit.providers import EngineProvider
from tokendice.experiments.decoding.decode import decode_batch
from tokendice.experiments.decoding.forcing import forced_logprobs
from tokendice.params import RandomSpec, SamplingParams

TARGET_ID = 0
"""Sample id of the audited row (its random stream); the other rows of a batch get 1, 2, ..."""

FILLER_TEXT = (
    "Rivers carry sediment from the mountains to the sea, and over thousands of years the deltas they build "
    "become farmland. In the spring the snow melts, the water rises, and the villages along the banks prepare "
    "for floods. Engineers measure the flow every hour; farmers watch the sky; children count the boats that "
    "pass under the old stone bridge. A library keeps maps of every flood since the year the bridge was built."
)
FILLER_OFFSETS = (3, -2, 6, 1, -1, 4, 2, -3)
"""Length of filler prompt j relative to the audited prompt: some longer (the prompt gets padded),
some shorter; small, because a batch of 32 pays for every filler token."""


@dataclass(frozen=True)
class Condition:
    """One condition: a group (the control it varies), a label, and its setup."""

    group: str
    label: str
    setup: Setup


def build_conditions(groups: Sequence[str], baseline: Setup, batch_sizes: Sequence[int], other_engines: Sequence[str]) -> list[Condition]:
    """Every condition of the chosen groups, the baseline first."""
    planned: list[Condition] = []
    for group in groups:
        if group == BASELINE:
            planned.append(Condition(BASELINE, "baseline", baseline))
        elif group == BATCH:
            planned += [Condition(BATCH, f"batch {b}", baseline.with_(batch_size=b)) for b in batch_sizes if b != baseline.batch_size]
        elif group == DTYPE:
            planned += [Condition(DTYPE, d, baseline.with_(dtype=d)) for d in DTYPES if d != baseline.dtype]
        elif group == THREADS:
            other = 1 if baseline.resolved_threads != 1 else max(default_threads(), 2)
            label = "1 thread" if other == 1 else f"{other} threads"
            planned.append(Condition(THREADS, label, baseline.with_(threads=other)))
        elif group == KV_CACHE:
            label = "full recompute (no KV cache)" if baseline.kv_cache else "KV cache"
            planned.append(Condition(KV_CACHE, label, baseline.with_(kv_cache=not baseline.kv_cache)))
        elif group == ATTENTION:
            planned += [Condition(ATTENTION, f"{a} attention", baseline.with_(attention=a)) for a in ATTENTIONS if a != baseline.attention]
        elif group == ENGINES:
            planned += [Condition(ENGINES, name, baseline.with_(engine=name)) for name in other_engines]
    return planned


def applicable(condition: Condition, provider: EngineProvider) -> bool:
    return condition.group == BASELINE or condition.group in provider.controls


@dataclass
class Outcome:
    """One run of the audited prompt: its tokens, and what the model saw at each step."""

    tokens: list[int]
    model_logprobs: list[float]
    sampling_logprobs: list[float]
    finish_reason: str
    top2: list[tuple[int, float, int, float]] = field(default_factory=list)  # (top-1 id, logprob, top-2 id, logprob)
    ref_logprobs: list[float] = field(default_factory=list)  # model logprob of the reference token at each step
    seconds: float = 0.0

    def margin(self, step: int) -> float | None:
        """Top-1 minus top-2 model log-probability at `step` (None past the end)."""
        if step >= len(self.top2):
            return None
        _, lp1, _, lp2 = self.top2[step]
        return lp1 - lp2


def filler_prompts(tokenizer: Tokenizer, prompt_ids: Sequence[int], count: int) -> list[list[int]]:
    """`count` other prompts of different lengths, from a neutral text (or the prompt's own tokens)."""
    try:
        pool = list(tokenizer.encode(FILLER_TEXT))
    except Exception:  # a toy tokenizer that cannot spell the filler text
        pool = []
    if len(pool) < 8:
        pool = list(prompt_ids)
    base = len(prompt_ids)
    prompts = []
    for j in range(count):
        length = max(1, base + FILLER_OFFSETS[j % len(FILLER_OFFSETS)])
        start = (7 * j) % len(pool)
        prompts.append([pool[(start + i) % len(pool)] for i in range(length)])
    return prompts


def batch_prompts(tokenizer: Tokenizer, prompt_ids: Sequence[int], batch_size: int) -> tuple[list[list[int]], int]:
    """The batch for a run and the row of the audited prompt (in the middle, among the fillers)."""
    fillers = filler_prompts(tokenizer, prompt_ids, batch_size - 1)
    row = batch_size // 2
    return fillers[:row] + [list(prompt_ids)] + fillers[row:], row


def run_once(
    engine: Engine,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    rng: RandomSpec,
    batch_size: int = 1,
    reference: Sequence[int] | None = None,
) -> Outcome:
    """Decode the prompt once, in a batch of `batch_size`, and record the audited row."""
    start = time.perf_counter()
    prompts, row = batch_prompts(engine.tokenizer, prompt_ids, batch_size)
    history, _ = left_pad(prompts)
    ids = np.asarray([TARGET_ID if r == row else r + 1 for r in range(len(prompts))], dtype=np.int64)
    top2: list[tuple[int, float, int, float]] = []
    ref_lps: list[float] = []
    own_lps: list[float] = []  # float64, like ref_lps, so that equal logits give a drift of exactly 0

    def observe(step: int, raw: torch.Tensor, stages: list[torch.Tensor], chosen: torch.Tensor, active: np.ndarray) -> None:
        where = np.nonzero(active == TARGET_ID)[0]
        if len(where) == 0:
            return
        logp = torch.log_softmax(raw[int(where[0])].double(), dim=-1)
        best = torch.topk(logp, min(2, logp.shape[-1]))
        i1, i2 = int(best.indices[0]), int(best.indices[-1])
        top2.append((i1, float(logp[i1]), i2, float(logp[i2])))
        own_lps.append(float(logp[int(chosen[int(where[0])])]))
        ref_lps.append(float(logp[reference[step]]) if reference is not None and step < len(reference) else math.nan)

    if rng.mode == "torch":
        torch.manual_seed(rng.seed)
    state = engine.prefill(prompts)
    done = decode_batch(engine, state, history, ids, params, rng, observe)[row]
    model_lps = own_lps if len(own_lps) == len(done.tokens) else done.model_logprobs
    return Outcome(done.tokens, model_lps, done.sampling_logprobs, done.finish_reason,
                   top2, ref_lps, time.perf_counter() - start)


def forced_logprobs_of(engine: Engine, prompt_ids: Sequence[int], tokens: Sequence[int], batch_size: int = 1) -> list[float]:
    """Model log-probability of each of `tokens` when the audited row is forced along them."""
    prompts, row = batch_prompts(engine.tokenizer, prompt_ids, batch_size)
    logprobs = forced_logprobs(engine, prompts, row, tokens)
    return [float(logprobs[t, int(tok)]) for t, tok in enumerate(tokens)]
