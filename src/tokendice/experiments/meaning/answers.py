"""The answer distribution of a prompt: what its completions say, how often (samples) and how
probably (an exact enumeration), in one table.

From samples: each answer's count among the n samples, its share and the 95% Wilson interval
of the share. From an enumeration: each answer's exact probability under the sampling
distribution, the sum over the enumerated completions that give it, and the interval
[p, p + unexplored mass] (the completions not enumerated could all give it, or none). With
both (the samples of a run and an enumeration of the same prompt and sampler), a
goodness-of-fit test of the answer counts against the exact answer probabilities, pooled as
the sample analysis pools completions: answers expecting fewer than 5 samples, answers the
enumeration did not list and the unexplored mass go into one cell; a sample whose completion
the enumeration did not list counts there too, whatever its answer (the unexplored mass may
hold completions that give any answer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.analysis import Frequency, goodness_of_fit
from tokendice.analysis.extract import NO_ANSWER, AnswerSpec
from tokendice.experiments.distribution.analysis import Fit
from tokendice.experiments.meaning.items import Answer, Outcomes
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json

NORMALISATION = ("Unicode NFKC, case folded, whitespace collapsed, surrounding whitespace and punctuation stripped; "
                 "read without the end-of-sequence token's text; no answer found: " + NO_ANSWER)  # fmt: skip
EXAMPLES = 3
"""Completions kept per answer (its most frequent, or most probable), to show what it stands for."""


@dataclass
class AnswerRow:
    """One distinct answer. `count`, `share`, `ci_low`, `ci_high`: from the samples (None without);
    `exact_prob`: the sum of the enumerated completions' exact probabilities that give it (None
    without an enumeration; 0 for an answer only the samples found: its completions are in the
    unexplored mass)."""

    answer: str
    count: int | None = None
    share: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    exact_prob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Example:
    """A completion that gives an answer: its text, how many samples it was (None: not sampled), its
    exact probability under the sampling distribution (enumerated, or recorded while sampling; None
    when the engine reported none)."""

    text: str
    count: int | None
    prob: float | None


@dataclass
class AnswerCompletions:
    """What stands behind one answer: how many distinct completions give it, and the first few."""

    answer: str
    distinct: int
    examples: list[Example] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "distinct": self.distinct, "examples": [asdict(e) for e in self.examples]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerCompletions:
        return cls(data["answer"], data["distinct"], [Example(**e) for e in data["examples"]])


@dataclass(repr=False)
class AnswerDistribution(Result):
    """A prompt's answers (`td.answers`): one `AnswerRow` per distinct answer, most probable first
    (by exact probability when there is an enumeration, else by count), with the counts, shares
    and 95% Wilson intervals of `n` samples and the exact probabilities of an enumeration, whose
    `unexplored` mass bounds each: the true probability lies in [exact_prob, exact_prob + unexplored].
    `fit`: the goodness-of-fit test of the counts against the exact probabilities (both given).

    `to_dataframe()`: one row per answer (columns `COLUMNS`): rank, answer, count, share, ci_low,
    ci_high (95% Wilson interval of the share), exact_prob, exact_high (exact_prob + unexplored
    mass, at most 1), completions (distinct completions giving it, sampled or enumerated), n.
    """

    kind: ClassVar[str] = "answers"
    COLUMNS: ClassVar[tuple[str, ...]] = ("rank", "answer", "count", "share", "ci_low", "ci_high", "exact_prob", "exact_high", "completions", "n")

    prompt: str
    extract: str
    answers: list[AnswerRow] = field(default_factory=list)
    n: int | None = None  # samples (None: no samples, an enumeration alone)
    unexplored_mass: float | None = None  # the enumeration's (None: no enumeration)
    exact_source: str | None = None  # what the exact probabilities are, in words
    fit: Fit | None = None
    completions: list[AnswerCompletions] = field(default_factory=list)  # per answer, in the order of `answers`
    engine: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    sample_run_id: str | None = None
    enumeration_run_id: str | None = None
    prompt_index: int = 0
    run_id: str | None = None  # answers are computed from runs, not stored: always None

    @property
    def source(self) -> str:
        """Where the numbers come from: "samples", "enumeration" or "samples and enumeration"."""
        parts = [name for name, there in (("samples", self.n is not None), ("enumeration", self.unexplored_mass is not None)) if there]
        return " and ".join(parts)

    def exact_high(self, row: AnswerRow) -> float | None:
        """The upper end of the answer's exact interval: exact_prob + the unexplored mass, at most 1."""
        if row.exact_prob is None or self.unexplored_mass is None:
            return None
        return min(1.0, row.exact_prob + self.unexplored_mass)

    def to_dict(self) -> dict[str, Any]:
        return finite_json({
            "kind": self.kind,
            "run_id": self.run_id,
            "prompt": self.prompt,
            "prompt_index": self.prompt_index,
            "extract": self.extract,
            "normalisation": NORMALISATION,
            "source": self.source,
            "n": self.n,
            "answers": [a.to_dict() for a in self.answers],
            "unexplored_mass": self.unexplored_mass,
            "exact_probabilities": self.exact_source,
            "goodness_of_fit": asdict(self.fit) if self.fit is not None else None,
            "completions": [c.to_dict() for c in self.completions],
            "engine": self.engine,
            "model": self.model,
            "params": self.params,
            "sample_run_id": self.sample_run_id,
            "enumeration_run_id": self.enumeration_run_id,
        })  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerDistribution:
        fields = init_fields(cls, data, "answers", "fit", "completions", "exact_source", "params")
        return cls(
            **fields, answers=[AnswerRow(**a) for a in data["answers"]],
            fit=Fit.from_dict(data["goodness_of_fit"]) if data.get("goodness_of_fit") else None,
            completions=[AnswerCompletions.from_dict(c) for c in data.get("completions") or []],
            exact_source=data.get("exact_probabilities"), params=dict(data.get("params") or {}),
        )  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        distinct = {c.answer: c.distinct for c in self.completions}
        return [
            {"rank": rank, "answer": a.answer, "count": a.count, "share": a.share, "ci_low": a.ci_low, "ci_high": a.ci_high,
             "exact_prob": a.exact_prob, "exact_high": self.exact_high(a), "completions": distinct.get(a.answer), "n": self.n}
            for rank, a in enumerate(self.answers, 1)
        ]  # fmt: skip

    def headline(self) -> str:
        model = f" · {self.model}" if self.model else ""
        top = ""
        if self.answers:
            a = self.answers[0]
            said = []
            if a.share is not None:
                said.append(f"{a.share:.1%} [{a.ci_low:.1%}, {a.ci_high:.1%}]")
            if a.exact_prob is not None:
                said.append(f"p={a.exact_prob:.4f}")
            top = f" · top {clip(a.answer, 24)} " + " ".join(said)
        n = f" · n={self.n}" if self.n is not None else ""
        rest = f" · unexplored {self.unexplored_mass:.4f}" if self.unexplored_mass is not None else ""
        return f"{clip(self.prompt, 40)} · {self.extract}{n} · {len(self.answers)} answers{top}{rest}{model}"


def answer_distribution(
    extract: AnswerSpec | str,
    samples: Outcomes | None = None,
    exact: Outcomes | None = None,
    **about: Any,
) -> AnswerDistribution:
    """The answers of a prompt's `samples` and/or its enumeration (`exact`), read with `extract`;
    `about` fills the descriptive fields (prompt, engine, model, params, run ids, exact_source)."""
    spec = AnswerSpec.parse(extract)
    if samples is None and exact is None:
        raise ValueError("answer_distribution needs samples, an enumeration, or both")
    sampled = {a.answer: a for a in samples.answers(spec)} if samples is not None else {}
    enumerated = {a.answer: a for a in exact.answers(spec)} if exact is not None else {}
    n = samples.n if samples is not None else None
    rows = []
    for answer in dict.fromkeys([*enumerated, *sampled]):
        row = AnswerRow(answer)
        if n is not None:
            count = sampled[answer].count if answer in sampled else 0
            f = Frequency.of(count, n)
            row.count, row.share, row.ci_low, row.ci_high = count, f.share, f.low, f.high
        if exact is not None:
            row.exact_prob = enumerated[answer].prob if answer in enumerated else 0.0
        rows.append(row)
    if exact is not None:
        rows.sort(key=lambda r: (-(r.exact_prob or 0.0), -(r.count or 0), r.answer))
    else:
        rows.sort(key=lambda r: (-(r.count or 0), r.answer))
    fit = _fit(samples, exact, spec) if samples is not None and exact is not None else None
    completions = [_completions(r.answer, sampled.get(r.answer), enumerated.get(r.answer)) for r in rows]
    prompt = about.pop("prompt", None) or (samples.prompt if samples is not None else exact.prompt)  # type: ignore[union-attr]
    return AnswerDistribution(
        prompt=prompt, extract=str(spec), answers=rows, n=n, unexplored_mass=exact.unexplored if exact is not None else None,
        fit=fit, completions=completions, **about,
    )  # fmt: skip


class _Unlisted:
    """The cell of the samples whose completion the enumeration does not list."""

    def __repr__(self) -> str:
        return "<unlisted completions>"


UNLISTED = _Unlisted()


def _fit(samples: Outcomes, exact: Outcomes, spec: AnswerSpec) -> Fit:
    """The G-test of the answer counts against the exact answer probabilities, pooled as
    `analyze_samples` pools completions. A sample counts for its answer when the enumeration
    lists its completion; one whose completion is not listed counts in the cell of the
    unexplored mass, whatever its answer (that mass may hold completions giving any answer,
    so only this split has exactly known probabilities). Answers expecting fewer than 5 samples
    join that cell; probabilities that sum short of 1 without a rest are rescaled."""
    listed = {o.tokens for o in exact.outcomes}
    counts: dict[Any, int] = {}
    for o in samples.outcomes:
        key = spec(o.body) if o.tokens in listed else UNLISTED
        counts[key] = counts.get(key, 0) + o.count
    probs = {a.answer: a.prob or 0.0 for a in exact.answers(spec)}
    known = {a: p for a, p in probs.items() if p > 0}
    total = math.fsum(known.values())
    rest = max(0.0, 1.0 - total)
    scale = 1.0 if rest > 0 or math.isclose(total, 1.0, abs_tol=1e-6) else 1.0 / total
    return Fit.of(goodness_of_fit(counts, {a: p * scale for a, p in known.items()}, unexplored_mass=rest))


def _completions(answer: str, sampled: Answer | None, enumerated: Answer | None) -> AnswerCompletions:
    """The distinct completions behind an answer (sampled and enumerated ones, by their tokens),
    the most frequent first, then the most probable."""
    merged: dict[tuple[int, ...], Example] = {}
    for source in (sampled, enumerated):
        for o in (source.completions if source is not None else []):
            seen = merged.get(o.tokens)
            if seen is None:
                merged[o.tokens] = Example(o.text, o.count if source is sampled else None, o.prob)
            else:  # sampled and enumerated: the enumeration's probability (the samples' recorded one agrees)
                seen.prob = o.prob
    ordered = sorted(merged.values(), key=lambda e: (-(e.count or 0), -(e.prob or 0.0), e.text))
    return AnswerCompletions(answer, len(merged), ordered[:EXAMPLES])
