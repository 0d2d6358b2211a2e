"""`answers`: what a sample run's or an enumeration's completions say, as an answer distribution.

Computed from the runs it reads (no model is loaded, nothing is stored): `td.answers(run_id)`
gives the same result every time.
"""

from __future__ import annotations

from typing import Any

from tokendice.analysis.extract import AnswerSpec
from tokendice.api._pairing import check_exact_arg, exact_enumeration, resolve
from tokendice.errors import ParameterError
from tokendice.experiments.meaning.answers import AnswerDistribution, answer_distribution
from tokendice.experiments.meaning.items import from_enumeration, outcomes_of
from tokendice.experiments.results import Result
from tokendice.params import require_int


def answers(
    result: Result | str,
    extract: AnswerSpec | str = "exact",
    *,
    exact: Any = None,
    prompt_index: int = 0,
    db: str | None = None,
) -> AnswerDistribution:
    """The answer distribution of a sample run or an enumeration (a result, or a stored run's id):
    an `AnswerDistribution`.

    `extract` says what the answer of a completion is: "exact" (the whole completion, normalised),
    "first-line", "first-word", "number", "choice:A,B,C,D", "regex:PATTERN", "json:FIELD" (see
    `tokendice.analysis.extract`). From samples: each answer's count, share and 95% Wilson interval.
    From an enumeration: its exact probability (the sum over its completions) and the interval
    [p, p + unexplored mass]. `exact`, for a sample run: an `Enumeration` of the same prompt and
    sampler (or its run id), or True for the one `td.sample(exact=True)` made (kept in memory, not
    stored): both in one table, with a goodness-of-fit test of the counts against the exact
    probabilities. `prompt_index` picks a prompt of a run of several.
    """
    spec = AnswerSpec.parse(extract)
    require_int("prompt_index", prompt_index, 0)
    check_exact_arg(exact)
    result = resolve(result, "result", db)
    if result.kind == "enumerate":
        exact_enumeration(result, exact, prompt_index, db)  # refuses exact= beside an enumeration
        if prompt_index != 0:
            raise ParameterError(f"an enumeration has one prompt: prompt_index must be 0, got {prompt_index}", param="prompt_index")
        return answer_distribution(spec, exact=from_enumeration(result), **_about(result), enumeration_run_id=result.run_id)
    samples = outcomes_of(result, prompt_index)
    enumeration, _ = exact_enumeration(result, exact, prompt_index, db)
    about = _about(result)
    about.update(prompt=samples.prompt, prompt_index=prompt_index, sample_run_id=result.run_id)
    exact_outcomes = None
    if enumeration is not None:
        exact_outcomes = from_enumeration(enumeration)
        exact_outcomes.prompt = samples.prompt
        about.update(enumeration_run_id=enumeration.run_id, exact_source=_source(enumeration))
    return answer_distribution(spec, samples, exact_outcomes, **about)


def _about(result: Any) -> dict[str, Any]:
    about = {"prompt": result.prompt if result.kind == "enumerate" else "", "engine": result.engine, "model": result.model,
             "params": dict(result.params or {})}  # fmt: skip
    if result.kind == "enumerate":
        about["exact_source"] = _source(result)
    return about


def _source(enumeration: Any) -> str:
    return (f"sampling distribution (after the whole sampler chain), from an exact enumeration: "
            f"{len(enumeration.completions)} completions holding {enumeration.found_mass:.6f} of the mass")
