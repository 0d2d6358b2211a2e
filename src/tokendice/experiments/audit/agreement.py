"""Agreement over a prompt set: TARr@N and TARa@N (Atil et al. 2024).

Every prompt runs N times under one setup. TARr@N is the share of prompts whose
N raw outputs are all identical; TARa@N the same after an answer-extraction
regex. With a batch size above 1 the prompts are decoded together, left-padded,
and each repeat rotates their order, so a prompt meets different neighbours in
different rows from one repeat to the next, as it would on a busy server.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from tokendice.analysis.agreement import extract_answer, tara_at_n, tarr_at_n, unique_outputs
from tokendice.analysis.branching import first_divergence_step
from tokendice.engines.base import left_pad
from tokendice.errors import EngineError, ParameterError
from tokendice.experiments.audit.conditions import TARGET_ID, Outcome
from tokendice.experiments.audit.controls import Setup, applied
from tokendice.experiments.audit.providers import EngineProvider
from tokendice.experiments.audit.summary import sample_records, store_report
from tokendice.experiments.decoding.decode import decode_batch
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store import Store
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptAgreement:
        return cls(**init_fields(cls, data))


@dataclass(repr=False)
class AgreementReport(Result):
    """TARr@N and TARa@N over a prompt set, with each prompt's details (one row per prompt)."""

    kind: ClassVar[str] = "audit_prompts"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "index", "prompt", "unique_outputs", "unique_answers", "first_divergence", "agree", "answers_agree",
        "outputs", "answers",
    )

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
    notes: list[str] = field(default_factory=list)  # e.g. that the machine was busy
    wall_seconds: float = 0.0
    run_id: str | None = None
    samples: list[SampleRecord] = field(default_factory=list, repr=False, compare=False)  # kept as the run's samples

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **{k: v for k, v in asdict(self).items() if k != "samples"}}
        data[f"tarr_at_{self.repeats}"] = self.tarr
        data[f"tara_at_{self.repeats}"] = self.tara
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgreementReport:
        """A report as `to_dict` wrote it (a stored run's 'report'), without its samples."""
        prompts = [PromptAgreement.from_dict(p) for p in data.get("prompts", [])]
        return cls(**init_fields(cls, data, "prompts", "samples"), prompts=prompts)

    def rows(self) -> list[dict[str, Any]]:
        """One row per prompt: `agree` when its N outputs are all identical (what TARr@N counts),
        `answers_agree` the same for the extracted answers (None without an answer regex)."""
        return [
            {
                "index": p.index, "prompt": p.prompt, "unique_outputs": p.unique_outputs, "unique_answers": p.unique_answers,
                "first_divergence": p.first_divergence, "agree": p.unique_outputs == 1,
                "answers_agree": None if p.unique_answers is None else p.unique_answers == 1,
                "outputs": list(p.outputs), "answers": list(p.answers),
            }
            for p in self.prompts
        ]

    def headline(self) -> str:
        n = self.repeats
        first = clip(self.prompts[0].prompt, 30) if self.prompts else '""'
        more = f" and {len(self.prompts) - 1} more" if len(self.prompts) > 1 else ""
        tara = f" · TARa@{n} {self.tara:.3f}" if self.tara is not None else ""
        return (f"{first}{more} × {n} repeats · TARr@{n} {self.tarr:.3f}{tara} · batch {self.batch_size} · "
                f"{self.model} ({self.engine})")


def compile_regex(pattern: Any) -> re.Pattern[str] | None:
    """The answer regex, compiled (None: no answer extraction)."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ParameterError(f"answer_regex must be a string, got {pattern!r}", param="answer_regex")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ParameterError(f"answer_regex {pattern!r} is not a valid regular expression: {exc}", param="answer_regex") from exc


def chunks_of(n_prompts: int, batch_size: int) -> int:
    """Batches per repeat (the progress total is repeats × this)."""
    return math.ceil(n_prompts / min(batch_size, n_prompts))


def run_agreement(
    provider: EngineProvider,
    prompts: Sequence[str],
    params: SamplingParams,
    rng: RandomSpec | None = None,
    repeats: int = 5,
    answer_regex: str | None = None,
    setup: Setup | None = None,
    chat: bool = False,
    advance: Callable[..., None] | None = None,
) -> AgreementReport:
    """Run every prompt `repeats` times under `setup` (its batch size too) and measure agreement.
    `advance(batches, label=None)` follows the batches decoded."""
    regex = compile_regex(answer_regex)
    rng, setup = rng or RandomSpec(), setup or Setup(engine=provider.name)
    step = advance or (lambda units, label=None: None)
    started = time.perf_counter()
    engine = provider.engine(setup)
    if not engine.kind.white_box:
        raise EngineError(f"the audit needs a white-box engine (logits); {engine.name} is black-box")
    ids = [encode_prompt(engine.tokenizer, p, chat) for p in prompts]
    n, size = len(prompts), min(setup.batch_size, len(prompts))
    runs: list[list[Outcome]] = [[] for _ in prompts]
    chunks = chunks_of(n, size)
    with applied(setup, engine):
        description = engine.describe()
        for r in range(repeats):
            order = [(i + r) % n for i in range(n)] if size > 1 else list(range(n))
            for c in range(chunks):
                step(0, f"repeat {r + 1}/{repeats}")
                rows = order[c * size : (c + 1) * size]
                for i, outcome in zip(rows, _decode_rows(engine, [ids[i] for i in rows], params, rng)):
                    runs[i].append(outcome)
                step(1)
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


def store_agreement(store: Store, report: AgreementReport) -> str:
    """Keep a prompt-set agreement as a run of kind 'audit' (manifest mode 'prompts'); sets `report.run_id`."""
    controls = {k: v for k, v in report.setup.items() if k != "engine_description"}
    prompts = report.prompts
    prompt = prompts[0].prompt if len(prompts) == 1 else f"({len(prompts)} prompts) {prompts[0].prompt}"
    extra = {"mode": "prompts", "answer_regex": report.answer_regex, "prompts": [p.prompt for p in prompts]}
    return store_report(store, report, prompt, report.setup.get("engine_description", {}), controls, extra)


def _decode_rows(engine: Any, prompts: list[list[int]], params: SamplingParams, rng: RandomSpec) -> list[Outcome]:
    """Decode prompts together, left-padded; every row is its own request (sample id 0)."""
    history, _ = left_pad(prompts)
    if rng.mode == "torch":
        torch.manual_seed(rng.seed)
    ids = np.full(len(prompts), TARGET_ID, dtype=np.int64)
    done = decode_batch(engine, engine.prefill(prompts), history, ids, params, rng)
    return [Outcome(c.tokens, c.model_logprobs, c.sampling_logprobs, c.finish_reason) for c in done]
