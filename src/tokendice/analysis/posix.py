"""POSIX, the prompt sensitivity index (Chatterjee et al. 2024).

"POSIX: A Prompt Sensitivity Index For Large Language Models" (arXiv
2410.02185) measures how much a model's belief in its own answers moves when
the prompt is replaced by an intent-preserving variant (a typo, another
template, a paraphrase). For N variants x_1..x_N with responses y_1..y_N
(y_j generated from x_j):

    psi = 1 / (N (N - 1)) · Σ_i Σ_{j≠i} (1 / L_{y_j}) · | log( P(y_j | x_i) / P(y_j | x_j) ) |

with L_{y_j} the number of tokens of y_j, so that long responses do not
dominate. psi = 0 when every variant assigns each response the same
likelihood; it grows as the variants disagree. POSIX over a data set of
prompt sets is the mean psi.

tokendice follows this formula, as the paper writes it. The authors' released
code (github.com/kowndinya-renduchintala/POSIX, `prompt_sensitivity_index/
posix.py`, commit 96077d0) computes something else in two ways. Its matrix has
the same layout (row i = prompt x_i, column j = response y_j), but its term for
(i, j) is |log P(y_i | x_j) - log P(y_j | x_j)|: two responses scored under one
prompt, where the paper's is |log P(y_j | x_i) - log P(y_j | x_j)|: one response
scored under two prompts. And it divides every term by the generation limit
`max_new_tokens`, not by the response's length. Passing that limit as every
length reproduces only the second difference; the released number is
`posix_index(matrix.T, [max_new_tokens] * N)`: the transposed matrix as well.
The two differ on any matrix that is not symmetric in this sense (one measured
run: 2.048 with the lengths alone, 2.059 by the released code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tokendice.errors import ParameterError


def posix_index(loglik_matrix: Any, response_lengths: Sequence[int] | Any) -> float:
    """psi for one intent-aligned prompt set.

    `loglik_matrix[i][j]` = log P(y_j | x_i), natural log, summed over y_j's
    tokens: row = prompt variant, column = response. `response_lengths[j]` =
    number of tokens of y_j. A response impossible under another variant
    (log-likelihood -inf) makes psi infinite.
    """
    matrix = _as_array(loglik_matrix, "loglik_matrix")
    lengths = _as_array(response_lengths, "response_lengths")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ParameterError(f"loglik_matrix must be square (N x N), got shape {matrix.shape}")
    n = matrix.shape[0]
    if n < 2:
        raise ParameterError("POSIX needs at least 2 prompt variants")
    if lengths.shape != (n,):
        raise ParameterError(f"response_lengths must hold {n} lengths, got shape {lengths.shape}")
    if not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ParameterError("response_lengths must be finite and > 0")
    if np.any(np.isnan(matrix)) or np.any(matrix == np.inf):
        raise ParameterError("loglik_matrix must not contain NaN or +inf")
    own = np.diag(matrix)
    if not np.all(np.isfinite(own)):
        raise ParameterError("the diagonal log P(y_j | x_j) must be finite: y_j was generated from x_j")
    # Column j compared with its own diagonal entry; the diagonal terms are 0.
    ratios = np.abs(matrix - own[np.newaxis, :]) / lengths[np.newaxis, :]
    return float(ratios.sum() / (n * (n - 1)))


def posix_dataset(prompt_sets: Sequence[tuple[Any, Sequence[int] | Any]]) -> float:
    """POSIX over a data set: the mean psi of its (loglik_matrix, response_lengths) prompt sets."""
    if len(prompt_sets) == 0:
        raise ParameterError("prompt_sets must hold at least one prompt set")
    return float(np.mean([posix_index(matrix, lengths) for matrix, lengths in prompt_sets]))


def _as_array(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor; torch itself is not imported here
        values = values.detach().cpu().double().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{name} must be numeric: {error}") from None
