"""Pure functions on results: no model, no I/O.

Frequencies with confidence intervals, goodness of fit against exact
probabilities, divergences and entropy, agreement rates across repeated runs
(TARr@N / TARa@N), where generations fork, and the POSIX prompt sensitivity
index.
"""

from __future__ import annotations

from tokendice.analysis.agreement import extract_answer, tara_at_n, tarr_at_n, unique_outputs
from tokendice.analysis.branching import ENDED, first_divergence, first_divergence_step, next_token_counts_after, step_token_distribution
from tokendice.analysis.divergence import TVBound, entropy, js_divergence, kl_divergence, total_variation, total_variation_bounds
from tokendice.analysis.goodness import OTHER, FitResult, goodness_of_fit
from tokendice.analysis.intervals import Frequency, frequencies, wilson_interval
from tokendice.analysis.posix import posix_dataset, posix_index

__all__ = [
    "ENDED",
    "OTHER",
    "FitResult",
    "Frequency",
    "TVBound",
    "entropy",
    "extract_answer",
    "first_divergence",
    "first_divergence_step",
    "frequencies",
    "goodness_of_fit",
    "js_divergence",
    "kl_divergence",
    "next_token_counts_after",
    "posix_dataset",
    "posix_index",
    "step_token_distribution",
    "tara_at_n",
    "tarr_at_n",
    "total_variation",
    "total_variation_bounds",
    "unique_outputs",
    "wilson_interval",
]
