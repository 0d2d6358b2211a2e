"""`semantic`: semantic entropy of a sample run or an enumeration, sampled and exact."""

from __future__ import annotations

from typing import Any, Callable

from tokendice.analysis.extract import AnswerSpec
from tokendice.analysis.semantic import LEVEL, RESAMPLES, log_max_completions
from tokendice.api._pairing import exact_enumeration, resolve
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.decoding.enumerate import Enumeration
from tokendice.experiments.distribution.run import SampleRun
from tokendice.experiments.meaning.items import outcomes_of
from tokendice.experiments.meaning.judges import FunctionJudge, Judge, JudgeSpec, build_judge, check_embedding_model, check_nli_model
from tokendice.experiments.meaning.semantic import SemanticResult, semantic_entropy
from tokendice.params import require_int, require_number


def semantic(
    result: SampleRun | Enumeration | str,
    judge: str | JudgeSpec | Judge | Callable[[str, str], bool] = "exact",
    *,
    extract: str | AnswerSpec | None = None,
    exact: Enumeration | str | bool | None = None,
    prompt_index: int = 0,
    vocab_size: int | None = None,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    db: str | None = None,
) -> SemanticResult:
    """Semantic entropy of one prompt's completions: a `SemanticResult`.

    `result`: a sample run (one prompt of it: `prompt_index`) or an enumeration, or a stored run's
    id. `judge`: when two answers mean the same: "exact", "embedding[:MODEL][@T]", "nli:MODEL",
    "llm[:ENGINE[:MODEL]][@T]", a `Judge`, or a function (a, b) -> bool. `extract`: cluster the
    answers read with this answer spec ("number", "first-line", ...) instead of whole
    completions. `exact`: an enumeration of the same prompt and sampler (or its run id; True: the
    one `td.sample(exact=True)` made, kept in memory) for the exact semantic entropy and its
    bounds; the upper bound needs the vocabulary size, read from the stored run's engine (or
    `vocab_size`). Bootstrap intervals: `resamples` resamples,
    `level`, numpy generator seeded with `seed`. Nothing is stored.
    """
    spec = _judge_spec(judge)
    answer_spec = None if extract is None else AnswerSpec.parse(extract)
    require_int("prompt_index", prompt_index, 0)
    if vocab_size is not None:
        require_int("vocab_size", vocab_size, 1)
    require_int("resamples", resamples, 10)
    require_number("level", level, 0.0, 1.0, low_open=True)
    if level >= 1:
        raise ParameterError(f"level must be in (0, 1), got {level!r}", param="level")
    require_int("seed", seed, 0)
    source = resolve(result, "result", db)
    samples = outcomes_of(source, prompt_index) if isinstance(source, SampleRun) else None
    if samples is not None and not samples.n:
        raise ParameterError("the sample run holds no samples of that prompt", param="result")
    enumeration, in_memory = exact_enumeration(source, exact, prompt_index, db)
    if isinstance(source, Enumeration):
        if prompt_index != 0:
            raise ParameterError(f"an enumeration has one prompt: prompt_index must be 0, got {prompt_index}", param="prompt_index")
        enumeration = source
    exact_outcomes = outcomes_of(enumeration) if enumeration is not None else None
    log_k = None
    if enumeration is not None and exact_outcomes is not None:
        exact_outcomes.vocab_size = vocab_size or _vocab_size(source if in_memory else enumeration, db)
        params = (source.params if in_memory else enumeration.params) or {}
        exact_outcomes.max_new_tokens = exact_outcomes.max_new_tokens or params.get("max_new_tokens")
        top_k = params.get("top_k")
        log_k = log_max_completions(exact_outcomes.max_new_tokens, exact_outcomes.vocab_size, top_k)
    question = samples.prompt if samples is not None else enumeration.prompt if enumeration is not None else None
    made = _build(spec if isinstance(spec, JudgeSpec) else None, judge, question)
    out = semantic_entropy(samples, made, extract=answer_spec, exact=exact_outcomes,
                           exact_complete=enumeration is not None and _complete(enumeration), log_k=log_k,
                           resamples=resamples, level=level, seed=seed)  # fmt: skip
    out.prompt_index = prompt_index
    out.engine, out.model = getattr(source, "engine", ""), getattr(source, "model", "")
    out.source_run_id = getattr(source, "run_id", None)
    out.exact_run_id = enumeration.run_id if enumeration is not None and enumeration is not source and not in_memory else None
    return out


def check_judge(judge: str | JudgeSpec) -> str:
    """The judge spec, normalised ("embedding" -> "embedding@0.85"), once it is checked: its syntax,
    and that its model is here (without loading it). For the CLI, before a run is computed."""
    return str(_judge_spec(judge))


def _judge_spec(judge: Any) -> JudgeSpec | Judge:
    if isinstance(judge, Judge):
        return judge
    if callable(judge) and not isinstance(judge, (str, JudgeSpec)):
        return FunctionJudge(judge)
    spec = JudgeSpec.parse(judge)
    if spec.kind == "embedding":
        check_embedding_model(spec.model)
    elif spec.kind == "nli":
        check_nli_model(str(spec.model))
    elif spec.kind == "llm":
        from tokendice.engines.base import require_logits

        engine = spec.engine_spec()
        require_logits(engine, "an llm judge (it reads the yes/no probabilities)")
        engine.check_model()
    return spec


def _build(spec: JudgeSpec | None, judge: Any, question: str | None) -> Judge:
    """The judge (loaded models happen here, after every check)."""
    if spec is None:
        return judge if isinstance(judge, Judge) else FunctionJudge(judge)
    engine = None
    if spec.kind == "llm":
        from tokendice.api import _common

        engine = _common.load(spec.engine_spec())
    return build_judge(spec, engine=engine, question=question)


def _complete(enumeration: Enumeration) -> bool:
    """Whether the enumeration explored the whole tree (nothing on the frontier, nothing pruned)."""
    return enumeration.frontier_mass == 0 and enumeration.pruned_mass == 0


def _vocab_size(run: Any, db: str | None) -> int | None:
    """The vocabulary size recorded in a stored run's manifest (its engine), if it is stored."""
    if not getattr(run, "run_id", None):
        return None
    from tokendice.store import Store

    try:
        with Store(db) as store:
            value = store.get_run(run.run_id).manifest.get("engine", {}).get("vocab_size")
    except StoreError:
        return None
    return int(value) if isinstance(value, int) and value > 0 else None
