"""POSIX (Chatterjee et al. 2024) against hand-computed values and a direct double loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokendice.analysis import posix_dataset, posix_index
from tokendice.errors import ParameterError


def test_two_variants_by_hand() -> None:
    # L[i][j] = log P(y_j | x_i). Off-diagonal terms: |L[1][0] - L[0][0]| / 2 = |-5 + 2| / 2 = 1.5
    # and |L[0][1] - L[1][1]| / 4 = |-3 + 7| / 4 = 1.0; psi = (1.5 + 1.0) / (2 · 1) = 1.25.
    matrix = [[-2.0, -3.0], [-5.0, -7.0]]
    assert posix_index(matrix, [2, 4]) == pytest.approx(1.25)


def test_three_variants_by_hand() -> None:
    matrix = [
        [-1.0, -4.0, -6.0],
        [-2.0, -3.0, -3.0],
        [-4.0, -3.0, -3.0],
    ]
    lengths = [1, 2, 3]
    # Column 0 (own -1, length 1): |-2+1| + |-4+1| = 4 -> 4.
    # Column 1 (own -3, length 2): |-4+3| + |-3+3| = 1 -> 0.5.
    # Column 2 (own -3, length 3): |-6+3| + |-3+3| = 3 -> 1.
    # psi = (4 + 0.5 + 1) / (3 · 2) = 5.5 / 6.
    assert posix_index(matrix, lengths) == pytest.approx(5.5 / 6)


def test_matches_double_loop_and_accepts_arrays() -> None:
    rng = np.random.default_rng(9)
    n = 5
    matrix = -rng.gamma(2.0, 3.0, size=(n, n))
    lengths = rng.integers(1, 20, size=n)
    direct = sum(
        abs(math.log(math.exp(matrix[i][j]) / math.exp(matrix[j][j]))) / lengths[j]
        for i in range(n)
        for j in range(n)
        if j != i
    ) / (n * (n - 1))
    assert posix_index(matrix, lengths) == pytest.approx(direct)
    assert posix_index(torch.tensor(matrix), torch.tensor(lengths)) == pytest.approx(direct)


def test_zero_when_prompts_do_not_matter_and_infinite_when_impossible() -> None:
    # Each response has the same likelihood under every variant: columns are constant.
    assert posix_index([[-1.0, -2.0], [-1.0, -2.0]], [3, 3]) == 0.0
    assert posix_index([[-1.0, -math.inf], [-1.0, -2.0]], [3, 3]) == math.inf


def test_dataset_is_mean_of_sets() -> None:
    a = ([[-2.0, -3.0], [-5.0, -7.0]], [2, 4])  # 1.25
    b = ([[-1.0, -2.0], [-1.0, -2.0]], [3, 3])  # 0
    assert posix_dataset([a, b]) == pytest.approx(0.625)


@pytest.mark.parametrize(
    ("matrix", "lengths"),
    [
        ([[-1.0]], [1]),
        ([[-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0]], [1, 1, 1]),
        ([[-1.0, -2.0], [-1.0, -2.0]], [1]),
        ([[-1.0, -2.0], [-1.0, -2.0]], [1, 0]),
        ([[-1.0, float("nan")], [-1.0, -2.0]], [1, 1]),
        ([[-math.inf, -2.0], [-1.0, -2.0]], [1, 1]),
        ([["a", "b"], ["c", "d"]], [1, 1]),
    ],
)
def test_rejects_bad_input(matrix: list, lengths: list) -> None:
    with pytest.raises(ParameterError):
        posix_index(matrix, lengths)
    with pytest.raises(ParameterError):
        posix_dataset([])


def released_posix(matrix: list[list[float]], max_new_tokens: int) -> float:
    """The double loop of the authors' released code (kowndinya-renduchintala/POSIX, commit 96077d0),
    written out: matrix[i][j] = log P(y_j | x_i) there too, but each term compares two responses
    under one prompt, |M[j][i] - M[j][j]|, and is divided by max_new_tokens."""
    n = len(matrix)
    psi = sum(abs(matrix[j][i] - matrix[j][j]) / max_new_tokens for i in range(n) for j in range(n))
    return psi / (n * (n - 1))


def test_the_released_code_is_the_formula_on_the_transposed_matrix() -> None:
    # L[i][j] = log P(y_j | x_i), every length 2 (= max_new_tokens).
    # Paper: |L[1][0] - L[0][0]| = |-2 + 1| = 1 and |L[0][1] - L[1][1]| = |-4 + 3| = 1 -> (1 + 1) / 2 / (2 · 1) = 0.5.
    # Released: |L[1][0] - L[1][1]| = |-2 + 3| = 1 and |L[0][1] - L[0][0]| = |-4 + 1| = 3 -> (1 + 3) / 2 / 2 = 1.0.
    matrix = [[-1.0, -4.0], [-2.0, -3.0]]
    assert posix_index(matrix, [2, 2]) == pytest.approx(0.5)  # what tokendice computes: the paper's formula
    assert released_posix(matrix, 2) == pytest.approx(1.0)
    assert posix_index(np.transpose(matrix), [2, 2]) == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    random = -rng.gamma(2.0, 3.0, size=(6, 6))
    assert posix_index(random.T, [8] * 6) == pytest.approx(released_posix(random.tolist(), 8))
    assert posix_index(random, [8] * 6) != pytest.approx(released_posix(random.tolist(), 8))
