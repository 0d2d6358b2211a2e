"""What a sample run says: distinct completions with intervals and exact probabilities,
a goodness-of-fit test, where samples branch, agreement, and next-token checks.

Exact probabilities are under the *sampling* distribution (after the whole chain):
for a sampled completion, the product of the sampling probabilities of its tokens,
recorded while it was drawn; with an enumeration, the enumerated probabilities.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from tokendice.analysis import ENDED, FitResult, Frequency, first_divergence_step, goodness_of_fit, tarr_at_n, unique_outputs
from tokendice.experiments.decoding.enumerate import Enumeration
from tokendice.store import SampleRecord


def _float(value: Any) -> float:
    """A number read back from JSON, where NaN was written as null."""
    return math.nan if value is None else float(value)


@dataclass
class CompletionRow:
    text: str
    tokens: tuple[int, ...]
    frequency: Frequency  # observed count among n, share, 95% Wilson interval
    exact_prob: float | None  # under the sampling distribution

    def to_dict(self) -> dict[str, Any]:
        f = self.frequency
        return {"text": self.text, "tokens": list(self.tokens), "count": f.count, "share": f.share,
                "wilson95": [f.low, f.high], "exact_prob": self.exact_prob}

    @classmethod
    def from_dict(cls, data: dict[str, Any], n: int) -> CompletionRow:
        low, high = data["wilson95"]
        frequency = Frequency(count=data["count"], n=n, share=data["share"], low=low, high=high)
        return cls(data["text"], tuple(data["tokens"]), frequency, data.get("exact_prob"))


@dataclass
class Fit:
    """The goodness-of-fit test of one prompt's counts against exact probabilities (its summary)."""

    method: str  # "g" (G-test) or "chi2"
    statistic: float
    dof: int
    p_value: float
    categories: int  # after pooling rare ones
    n: int

    @classmethod
    def of(cls, fit: FitResult) -> Fit:
        return cls(fit.method, fit.statistic, fit.dof, fit.p_value, fit.categories, fit.n)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fit:
        return cls(data["method"], _float(data["statistic"]), data["dof"], _float(data["p_value"]), data["categories"], data["n"])


@dataclass
class StepSpread:
    step: int
    reaching: int  # samples with a token at this step
    distinct_prefixes: int  # distinct prefixes of length step + 1
    top_tokens: list[tuple[str, int]]  # most frequent tokens chosen at this step, with counts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSpread:
        return cls(data["step"], data["reaching"], data["distinct_prefixes"], [(t, c) for t, c in data["top_tokens"]])


@dataclass
class PrefixCheck:
    """Predicted (exact) vs observed next-token frequencies right after a generated prefix."""

    prefix: str
    prefix_tokens: list[int]
    reached: int  # samples that generated this prefix
    rows: list[dict[str, Any]]  # token, predicted sampling prob, model prob, observed count, Wilson interval

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrefixCheck:
        return cls(data["prefix"], list(data["prefix_tokens"]), data["reached"], [dict(r) for r in data["rows"]])


EXACT_PREFIX = "sampling distribution, from "


@dataclass
class SampleAnalysis:
    """What one prompt's samples say: distinct completions (most frequent first) with Wilson
    intervals and exact probabilities, the fit test, where samples spread, the prefix check."""

    n: int
    distinct: int
    tarr: float  # 1.0 when all n outputs are identical
    exact_source: str
    completions: list[CompletionRow]
    fit: Fit | None
    first_divergence_step: int | None
    spread: list[StepSpread] = field(default_factory=list)
    at_prefix: PrefixCheck | None = None
    prompt: str = ""
    # the enumeration the exact probabilities came from (exact=True), kept in memory for td.answers; not in to_dict
    enumeration: Enumeration | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "distinct": self.distinct,
            "tarr": self.tarr,
            "exact_probabilities": EXACT_PREFIX + self.exact_source,
            "completions": [c.to_dict() for c in self.completions],
            "goodness_of_fit": asdict(self.fit) if self.fit is not None else None,
            "first_divergence_step": self.first_divergence_step,
            "spread": [asdict(s) for s in self.spread],
            "at_prefix": asdict(self.at_prefix) if self.at_prefix else None,
            "prompt": self.prompt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleAnalysis:
        source = data.get("exact_probabilities") or ""
        return cls(
            n=data["n"], distinct=data["distinct"], tarr=_float(data["tarr"]),
            exact_source=source[len(EXACT_PREFIX):] if source.startswith(EXACT_PREFIX) else source,
            completions=[CompletionRow.from_dict(c, data["n"]) for c in data["completions"]],
            fit=Fit.from_dict(data["goodness_of_fit"]) if data.get("goodness_of_fit") else None,
            first_divergence_step=data.get("first_divergence_step"),
            spread=[StepSpread.from_dict(s) for s in data.get("spread") or []],
            at_prefix=PrefixCheck.from_dict(data["at_prefix"]) if data.get("at_prefix") else None,
            prompt=data.get("prompt", ""),
        )  # fmt: skip

    @property
    def top(self) -> CompletionRow | None:
        """The most frequent completion."""
        return self.completions[0] if self.completions else None


def analyze_samples(
    samples: Sequence[SampleRecord], exact: Enumeration | None = None, greedy: bool = False, prompt: str = ""
) -> SampleAnalysis:
    """Summarise one prompt's samples; `exact` (an enumeration) gives test categories independent of the data."""
    n = len(samples)
    by_tokens: dict[tuple[int, ...], SampleRecord] = {}
    counts: Counter[tuple[int, ...]] = Counter()
    for s in samples:
        key = tuple(s.tokens)
        counts[key] += 1
        by_tokens.setdefault(key, s)
    if exact is not None:
        probs = exact.distribution()
        source = f"exact enumeration ({exact.found_mass:.4f} of the mass found)"
    else:
        probs = {k: (1.0 if greedy else math.exp(s.sampling_logprob)) for k, s in by_tokens.items()}
        probs = {k: p for k, p in probs.items() if not math.isnan(p)}  # NaN: not known (a server's samples)
        source = "the log-probabilities recorded while sampling" if probs else "none: the engine reported no sampling probabilities"
    rows = [
        CompletionRow(by_tokens[k].text, k, Frequency.of(c, n), probs.get(k))
        for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    fit: Fit | None = None
    if probs and (len(counts) > 1 or exact is not None):
        known = {k: p for k, p in probs.items() if p > 0}
        rest = max(0.0, 1.0 - math.fsum(known.values()))
        scale = 1.0 if rest > 0 or math.isclose(math.fsum(known.values()), 1.0, abs_tol=1e-6) else 1.0 / math.fsum(known.values())
        fit = Fit.of(goodness_of_fit(dict(counts), {k: p * scale for k, p in known.items()}, unexplored_mass=rest))
    texts = [s.text for s in samples]
    return SampleAnalysis(
        n=n,
        distinct=unique_outputs(texts),
        tarr=tarr_at_n([texts]) if texts else math.nan,
        exact_source=source,
        completions=rows,
        fit=fit,
        first_divergence_step=first_divergence_step([s.tokens for s in samples]) if n > 1 else None,
        spread=_spread(samples),
        prompt=prompt,
        enumeration=exact,
    )


def _spread(samples: Sequence[SampleRecord], top: int = 3) -> list[StepSpread]:
    longest = max((len(s.tokens) for s in samples), default=0)
    out = []
    for step in range(longest):
        reaching = [s for s in samples if len(s.tokens) > step]
        tokens = Counter(s.token_texts[step] for s in reaching)
        prefixes = {tuple(s.tokens[: step + 1]) for s in reaching}
        out.append(StepSpread(step, len(reaching), len(prefixes), tokens.most_common(top)))
    return out


def check_prefix(
    samples: Sequence[SampleRecord],
    prefix_text: str,
    predict: Callable[[list[int]], tuple[dict[int, float], dict[int, float]]],
    token_text: Callable[[int], str],
    eos_ids: Sequence[int],
    top: int = 8,
) -> PrefixCheck:
    """Samples whose text starts with `prefix_text` at a token boundary: what came next,
    observed vs predicted. `predict(prefix_tokens)` gives (sampling probs, model probs)."""
    reached: list[SampleRecord] = []
    prefix_tokens: list[int] | None = None
    for s in samples:
        k = _boundary(s, prefix_text)
        if k is not None:
            reached.append(s)
            prefix_tokens = prefix_tokens or list(s.tokens[:k])
    if prefix_tokens is None:
        return PrefixCheck(prefix_text, [], 0, [])
    k = len(prefix_tokens)
    observed: Counter[int | str] = Counter(s.tokens[k] if len(s.tokens) > k else ENDED for s in reached if list(s.tokens[:k]) == prefix_tokens)
    n = sum(observed.values())
    sampling, model = predict(prefix_tokens)
    keys = sorted(set(sorted(sampling, key=lambda t: -sampling[t])[:top]) | set(observed), key=lambda t: -(sampling.get(t, 0) if isinstance(t, int) else 0))
    rows = []
    for t in keys:
        f = Frequency.of(observed.get(t, 0), n)
        rows.append(
            {
                "token": token_text(t) if isinstance(t, int) else t,
                "token_id": t if isinstance(t, int) else None,
                "eos": isinstance(t, int) and t in eos_ids,
                "predicted_sampling_prob": sampling.get(t, 0.0) if isinstance(t, int) else None,
                "model_prob": model.get(t) if isinstance(t, int) else None,
                "observed": f.count,
                "observed_share": f.share,
                "wilson95": [f.low, f.high],
            }
        )
    return PrefixCheck(prefix_text, prefix_tokens, n, rows)


def _boundary(s: SampleRecord, prefix_text: str) -> int | None:
    """The token count k at which the sample's text equals `prefix_text`, if any."""
    text = ""
    for k, piece in enumerate(s.token_texts):
        if text == prefix_text:
            return k
        if len(text) > len(prefix_text):
            return None
        text += piece
    return len(s.token_texts) if text == prefix_text else None
