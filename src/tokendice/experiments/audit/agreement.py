"""Agreement over a prompt set: TARr@N and TARa@N (Atil et al. 2024).

Every prompt runs N times under one setup. TARr@N is the share of prompts whose
N raw outputs are all identical; TARa@N the same after an answer-extraction
regex. With a batch size above 1 the prompts are decoded together, left-padded,
and each repeat rotates their order, so a prompt meets different neighbours in
different rows from one repeat to the next, as it would on a busy server.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from tokendice.engines.base import left_pad
from tokendice.analysis.agreement import extract_answer, tara_at_n, tarr_at_n, unique_outputs
from tokendice.analysis.branching import first_divergence_step
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.audit.conditions import TARGET_ID, Outcome
from tokendice.engines.threads import default_threads
from tokendice.experiments.audit.controls import Setup, applied
from tokendice.experiments.audit.providers import EngineProvider
from tokendice.experiments.audit.summary import sample_records
from tokendice.experiments.decoding.decode import decode_batch
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store.records import SampleRecord


@dataclass
class PromptAgreement:
    """One prompt's N outputs: how many distinct ones, and where they first fork."""

    index: int
    prompt: str
    unique_outputs: int
    unique_answers: int | None  # None without an answer regex
    first_divergence: int | None  # first step where the repeats do not all agree
    outputs: list[str]  # the distinct outputs
    answers: list[str | None]  # the distinct answers (None: the regex found nothing)


@dataclass
class AgreementReport:
    """TARr@N and TARa@N over a prompt set, with each prompt's details."""

    engine: str
    model: str
    params: dict[str, Any]
    seed: int
    rng: str
    repeats: int
    batch_size: int
    setup: dict[str, Any]
    answer_regex: str | None
    tarr: float
    tara: float | None
    prompts: list[PromptAgreement] = field(default_factory=list)
    wall_seconds: float = 0.0
    run_id: str | None = None
    samples: list[SampleRecord] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "samples"}
        data["kind"] = "audit-prompts"
        data[f"tarr_at_{self.repeats}"] = self.tarr
        data[f"tara_at_{self.repeats}"] = self.tara
        return data


def compile_regex(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ParameterError(f"answer regex {pattern!r} is not a valid regular expression: {exc}") from exc


def run_agreement(
    provider: EngineProvider,
    prompts: Sequence[str],
    params: SamplingParams,
    rng: RandomSpec | None = None,
    repeats: int = 5,
    answer_regex: str | None = None,
    setup: Setup | None = None,
    chat: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> AgreementReport:
    """Run every prompt `repeats` times under `setup` (its batch size too) and measure agreement."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1, got {repeats!r}")
    if not prompts:
        raise ParameterError("the prompt set is empty")
    regex = compile_regex(answer_regex)
    default_threads()  # torch's default, recorded before any engine changes it
    rng, setup = rng or RandomSpec(), setup or Setup(engine=provider.name)
    started = time.perf_counter()
    engine = provider.engine(setup)
    if not engine.kind.white_box:
        raise EngineError(f"the audit needs a white-box engine (logits); {engine.name} is black-box")
    ids = [encode_prompt(engine.tokenizer, p, chat) for p in prompts]
    n, size = len(prompts), min(setup.batch_size, len(prompts))
    runs: list[list[Outcome]] = [[] for _ in prompts]
    chunks = math.ceil(n / size)
    with applied(setup):
        description = engine.describe()
        for r in range(repeats):
            order = [(i + r) % n for i in range(n)] if size > 1 else list(range(n))
            for c in range(chunks):
                if progress is not None:
                    progress(r * chunks + c, repeats * chunks, f"repeat {r + 1}/{repeats}")
                rows = order[c * size : (c + 1) * size]
                for i, outcome in zip(rows, _decode_rows(engine, [ids[i] for i in rows], params, rng)):
                    runs[i].append(outcome)
    if progress is not None:
        progress(repeats * chunks, repeats * chunks, "done")
    decode = engine.tokenizer.decode
    texts = [[decode(o.tokens) for o in outs] for outs in runs]
    report = AgreementReport(
        engine=provider.name, model=provider.model_id, params=params.to_dict(), seed=rng.seed, rng=rng.mode,
        repeats=repeats, batch_size=size, setup={**setup.to_dict(), "engine_description": description},
        answer_regex=answer_regex, tarr=tarr_at_n(texts), tara=tara_at_n(texts, regex) if regex else None,
    )
    for i, (prompt, outs, txt) in enumerate(zip(prompts, runs, texts)):
        answers = [extract_answer(t, regex) for t in txt] if regex else []
        report.prompts.append(PromptAgreement(
            index=i, prompt=prompt, unique_outputs=unique_outputs(txt),
            unique_answers=len(set(answers)) if regex else None,
            first_divergence=first_divergence_step([o.tokens for o in outs]),
            outputs=list(dict.fromkeys(txt)), answers=list(dict.fromkeys(answers)),
        ))
        report.samples += sample_records(outs, decode, 0, prompt_index=i)
    report.wall_seconds = time.perf_counter() - started
    return report


def _decode_rows(engine: Any, prompts: list[list[int]], params: SamplingParams, rng: RandomSpec) -> list[Outcome]:
    """Decode prompts together, left-padded; every row is its own request (sample id 0)."""
    history, _ = left_pad(prompts)
    if rng.mode == "torch":
        torch.manual_seed(rng.seed)
    ids = np.full(len(prompts), TARGET_ID, dtype=np.int64)
    done = decode_batch(engine, engine.prefill(prompts), history, ids, params, rng)
    return [Outcome(c.tokens, c.model_logprobs, c.sampling_logprobs, c.finish_reason) for c in done]
