"""What `answers` and `semantic` read: a sample run or an enumeration (given, or a stored run's id),
and the enumeration set beside a sample run (`exact=`), checked to be of the same distribution."""

from __future__ import annotations

from typing import Any

from tokendice.errors import ParameterError
from tokendice.experiments.decoding.enumerate import Enumeration
from tokendice.experiments.distribution.run import SampleRun


def resolve(value: Any, name: str, db: str | None) -> SampleRun | Enumeration:
    """A sample run or an enumeration: given, or loaded from the store by run id."""
    if isinstance(value, (SampleRun, Enumeration)):
        return value
    if isinstance(value, str):
        from tokendice.api._runs import load_run

        if not value.strip():
            raise ParameterError(f"{name} must be a result or a run id, got {value!r}", param=name)
        loaded = load_run(value.strip(), db=db)
        if not isinstance(loaded, (SampleRun, Enumeration)):
            raise ParameterError(f"run {value} is a {loaded.kind} run: answers and meanings are read from a sample run or an enumeration", param=name)
        return loaded
    raise ParameterError(f"{name}: answers and meanings are read from a sample run or an enumeration (or a stored run's id), "
                         f"not from {type(value).__name__}", param=name)  # fmt: skip


def check_exact_arg(exact: Any) -> None:
    if not (exact is None or isinstance(exact, (Enumeration, str, bool))):
        raise ParameterError(f"exact must be an Enumeration, an enumeration's run id, True or None, got {type(exact).__name__}", param="exact")


def exact_enumeration(source: SampleRun | Enumeration, exact: Any, prompt_index: int, db: str | None) -> tuple[Enumeration | None, bool]:
    """The enumeration `exact=` names for one prompt of a sample run (None: none), and whether it is
    the one `td.sample(exact=True)` made in memory (of the run's own distribution by construction).
    A given or stored enumeration is checked to be of the run's prompt, model and sampler."""
    check_exact_arg(exact)
    if exact is None or exact is False:
        return None, False
    if isinstance(source, Enumeration):
        raise ParameterError("exact= goes with a sample run: an enumeration's probabilities are exact already", param="exact")
    if exact is True:
        return _in_memory(source, prompt_index), True
    enumeration = resolve(exact, "exact", db)
    if not isinstance(enumeration, Enumeration):
        raise ParameterError(f"exact must name an enumeration; run {enumeration.run_id} is a {enumeration.kind} run", param="exact")
    _check_same_distribution(source, source.analyses[prompt_index].prompt if source.analyses else "", enumeration)
    return enumeration, False


def _in_memory(run: SampleRun, prompt_index: int) -> Enumeration:
    analyses = run.analyses or []
    if not 0 <= prompt_index < len(analyses):
        raise ParameterError(f"prompt_index must be in [0, {len(analyses) - 1}], got {prompt_index!r}", param="prompt_index")
    found = analyses[prompt_index].enumeration
    if found is None:
        raise ParameterError("exact=True reads the enumeration td.sample(..., exact=True) made in this process (it is not "
                             "stored): this run has none; sample with exact=True, or pass an Enumeration or its run id", param="exact")  # fmt: skip
    if not found.prompt:
        found.prompt = analyses[prompt_index].prompt
    return found


def _check_same_distribution(run: SampleRun, prompt: str, enumeration: Enumeration) -> None:
    """An exact value is only comparable when the enumeration is of the same prompt, model and sampler."""
    differences = []
    if enumeration.prompt != prompt:
        differences.append(f"prompt {enumeration.prompt!r}, not {prompt!r}")
    ours, theirs = run.params or {}, enumeration.params or {}
    differences += [f"{name}={theirs.get(name)!r}, not {ours.get(name)!r}" for name in sorted(set(ours) | set(theirs))
                    if ours.get(name) != theirs.get(name)]  # fmt: skip
    for name in ("engine", "model"):
        mine, other = getattr(run, name), getattr(enumeration, name)
        if mine and other and mine != other:
            differences.append(f"{name} {other!r}, not {mine!r}")
    if differences:
        raise ParameterError("exact= must enumerate what the samples were drawn from: the enumeration has "
                             + "; ".join(differences) + " (enumerate with the run's prompt, model and sampler settings)", param="exact")  # fmt: skip
