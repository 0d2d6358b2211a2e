"""Drawing the next token: per-sample counter-based streams, or torch's global generator.

Per-sample mode gives sample i at step t the uniform number u(seed, i, t), a
SplitMix64 hash of the three integers. The draw is the inverse CDF of the
sampling distribution at u, so sample i is the same whether it ran alone, in a
batch of 1,000, or after a resume. Torch mode calls `torch.multinomial` on the
probabilities, exactly as transformers' `generate` does.
"""

from __future__ import annotations

import numpy as np
import torch

from tokendice.hashing import stream_hash


def uniforms(seed: int, sample_ids: np.ndarray, step: int) -> np.ndarray:
    """u(seed, i, step) in [0, 1) for each sample id i, as float64."""
    h = stream_hash(seed, np.asarray(sample_ids, dtype=np.uint64), step)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def inverse_cdf(probs: torch.Tensor, u: np.ndarray) -> torch.Tensor:
    """Index of the first token (in token-id order) whose cumulative weight exceeds u times the total
    (`probs` need not be normalised).

    When few tokens have mass (after top-k or top-p), the cumulative sum runs over
    those tokens only, still in token-id order: adding zeros changes no float sum,
    so the result is bit-identical to the dense computation, whatever the batch.
    """
    support = int((probs > 0).sum(dim=-1).max())
    if support * 4 >= probs.shape[-1]:
        return _inverse_cdf_dense(probs, u)
    values, ids = torch.topk(probs, support, dim=-1)
    order = ids.argsort(dim=-1)
    ids, values = ids.gather(1, order), values.gather(1, order)
    return ids.gather(1, _inverse_cdf_dense(values, u).unsqueeze(1)).squeeze(1)


def _inverse_cdf_dense(probs: torch.Tensor, u: np.ndarray) -> torch.Tensor:
    cdf = probs.double().cumsum(dim=-1)
    total = cdf[:, -1:]
    target = torch.from_numpy(u).reshape(-1, 1) * total
    idx = torch.searchsorted(cdf, target, right=True).squeeze(1)
    # u * total can round up to total; fall back to the last token with mass.
    last_positive = probs.shape[-1] - 1 - torch.argmax((probs.flip(-1) > 0).int(), dim=-1)
    return torch.minimum(idx, last_positive)


def draw(
    processed_logits: torch.Tensor,
    greedy: bool,
    mode: str,
    seed: int = 0,
    sample_ids: np.ndarray | None = None,
    step: int = 0,
) -> torch.Tensor:
    """Choose one column per row from the sampling distribution given by `processed_logits`.

    Per-sample draws use the unnormalised weights exp(logit - max): each is computed
    alone, so the same tokens with the same logits give the same draw whatever other
    columns (of zero weight) the row carries.
    """
    if greedy:
        return torch.argmax(processed_logits, dim=-1)
    if mode == "torch":
        return torch.multinomial(torch.softmax(processed_logits, dim=-1), num_samples=1).squeeze(1)
    assert sample_ids is not None, "per-sample mode needs sample ids"
    weights = torch.exp(processed_logits - processed_logits.amax(dim=-1, keepdim=True))
    return inverse_cdf(weights, uniforms(seed, sample_ids, step))
