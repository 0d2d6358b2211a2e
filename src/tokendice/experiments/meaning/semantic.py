"""Semantic entropy of one prompt's completions: sampled (with bootstrap intervals and its
convergence in N) and exact (from an enumeration, with bounds from the unexplored mass).

The items clustered are the completions' answers under an answer spec (`extract`, read as
`Outcomes.answers` reads them), or the whole completions (None), less the end-of-sequence
token's text (" Paris<|im_end|>" is " Paris"). Their order decides the greedy clustering:
sampled items most frequent first, then the items only the enumeration found, most probable
first. Each cluster is named after its first member; clusters are listed (and numbered)
largest first. The measures are in `tokendice.analysis.semantic` (its docstring derives the
exact bounds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.analysis.extract import AnswerSpec
from tokendice.analysis.intervals import wilson_interval
from tokendice.analysis.semantic import (
    LEVEL,
    RESAMPLES,
    Sampled,
    bootstrap_intervals,
    convergence_sizes,
    exact_semantic_entropy,
    greedy_clusters,
    sampled_measures,
)
from tokendice.experiments.meaning.items import Outcome, Outcomes
from tokendice.experiments.meaning.judges import Judge
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json


@dataclass
class Member:
    """One item of a cluster: its answer (or completion), samples that gave it, exact probability."""

    answer: str
    count: int = 0
    exact_prob: float | None = None


@dataclass
class Cluster:
    """One meaning. `count`/`share`: samples in it (of n), `ci_low`/`ci_high` the share's 95% Wilson
    interval; `weighted_prob`: the sum of the sequence
    probabilities of the distinct completions sampled in it, normalised over every distinct
    completion sampled; `exact_prob`: the sum of the exact probabilities of the enumerated
    completions in it (the unexplored mass may add to it); `prob`: exact_prob where an
    enumeration was given, else weighted_prob."""

    cluster: int
    answers: list[str]
    count: int
    prob: float | None
    share: float | None = None
    weighted_prob: float | None = None
    exact_prob: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    members: list[Member] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cluster:
        return cls(**{**init_fields(cls, data, "members"), "members": [Member(**m) for m in data.get("members", [])]})


@dataclass(repr=False)
class SemanticResult(Result):
    """Semantic entropy of one prompt's completions, clustered by a judge of meaning.

    JSON (`to_dict`): `clusters` = [{cluster, answers, count, prob, ...}], `semantic_entropy` =
    {discrete, weighted, exact_low, exact_high, exact} (nats; null where not computed),
    `num_semantic_sets`, `n` (samples), `predictive_entropy` = {naive, length_normalised},
    `intervals` (bootstrap, per measure), `bootstrap` (resamples, level, seed, method),
    `convergence` (the sampled estimates on the first N samples, with intervals), the judge and
    its threshold. `to_dataframe()`: one row per cluster (COLUMNS).
    """

    kind: ClassVar[str] = "semantic"
    COLUMNS: ClassVar[tuple[str, ...]] = ("cluster", "representative", "answers", "n_answers", "count", "share", "ci_low",
                                          "ci_high", "prob", "weighted_prob", "exact_prob")  # fmt: skip

    prompt: str
    judge: str
    threshold: float | None
    extract: str | None
    source: str  # "samples" or "enumeration"
    n: int
    clusters: list[Cluster]
    semantic_entropy: dict[str, float | None]
    num_semantic_sets: int
    predictive_entropy: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, dict[str, float | None]] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)
    convergence: list[dict[str, Any]] = field(default_factory=list)
    exact: dict[str, Any] | None = None
    judged_pairs: int = 0
    engine: str = ""
    model: str = ""
    source_run_id: str | None = None
    exact_run_id: str | None = None
    prompt_index: int = 0
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **asdict(self)}
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SemanticResult:
        return cls(**init_fields(cls, data, "clusters"), clusters=[Cluster.from_dict(c) for c in data["clusters"]])

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"cluster": c.cluster, "representative": c.answers[0] if c.answers else "", "answers": list(c.answers),
             "n_answers": len(c.answers), "count": c.count, "share": c.share, "ci_low": c.ci_low, "ci_high": c.ci_high, "prob": c.prob, "weighted_prob": c.weighted_prob,
             "exact_prob": c.exact_prob}
            for c in self.clusters
        ]  # fmt: skip

    def headline(self) -> str:
        se = self.semantic_entropy
        parts = [clip(self.prompt, 40), f"judge {self.judge}", f"{self.num_semantic_sets} semantic sets"]
        if se.get("discrete") is not None:
            iv = self.intervals.get("discrete") or {}
            parts.append(f"SE {se['discrete']:.3f} [{_f(iv.get('low'))}, {_f(iv.get('high'))}] (n={self.n})")
        if se.get("exact") is not None:
            parts.append(f"exact SE {se['exact']:.4f}")
        elif se.get("exact_low") is not None:
            parts.append(f"exact SE in [{_f(se['exact_low'])}, {_f(se.get('exact_high'))}]")
        return " · ".join(parts) + (f" · {self.model}" if self.model else "")


def _f(x: float | None) -> str:
    return "?" if x is None else f"{x:.3f}"


def semantic_entropy(
    samples: Outcomes | None,
    judge: Judge,
    *,
    extract: AnswerSpec | None = None,
    exact: Outcomes | None = None,
    exact_complete: bool = False,
    log_k: float | None = None,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> SemanticResult:
    """Cluster the items of `samples` and/or `exact` with `judge` and compute every measure.
    `exact_complete`: the enumeration explored the whole tree (its 1 - found mass is rounding);
    `log_k`: ln of the most completions its unexplored mass can hold (None: no upper bound)."""
    items: list[str] = []
    label_order: dict[str, int] = {}
    item_of: dict[str, str] = {}  # a completion's text -> the item clustered
    for source in (samples, exact):
        if source is None:
            continue
        for item, completions in _grouped(source, extract):
            if item not in label_order:
                label_order[item] = len(items)
                items.append(item)
            item_of.update({o.text: item for o in completions})
    read = item_of.__getitem__
    judge.prepare(items)
    groups = greedy_clusters(items, first=judge.first_same)
    label = {items[i]: c for c, members in enumerate(groups) for i in members}
    members = [[Member(items[i]) for i in g] for g in groups]
    by_item = {m.answer: m for group in members for m in group}

    n = samples.n if samples is not None else 0
    measures: dict[str, Any] = {}
    intervals: dict[str, dict[str, float | None]] = {}
    convergence: list[dict[str, Any]] = []
    weighted_mass = [0.0] * len(groups)
    weighted_known = True
    if samples is not None:
        sampled = _sampled(samples, read, label)
        measures = sampled_measures(sampled)
        boot = bootstrap_intervals(sampled, resamples=resamples, level=level, seed=seed)
        intervals = {name: {"low": iv.low, "high": iv.high} for name, iv in boot.items()}
        for size in convergence_sizes(n):
            part = sampled.prefix(size)
            value, iv = sampled_measures(part), bootstrap_intervals(part, resamples=resamples, level=level, seed=seed)
            convergence.append({"n": size, "discrete": value["discrete"], "discrete_low": iv["discrete"].low,
                                "discrete_high": iv["discrete"].high, "weighted": value["weighted"],
                                "weighted_low": iv["weighted"].low, "weighted_high": iv["weighted"].high})  # fmt: skip
        for text in samples.sample_texts:
            by_item[read(text)].count += 1
        for o in samples.outcomes:
            if o.prob is None:
                weighted_known = False
            else:
                weighted_mass[label[read(o.text)]] += o.prob
    exact_info = None
    exact_probs: list[float] | None = None
    se: dict[str, float | None] = {"discrete": measures.get("discrete"), "weighted": measures.get("weighted"),
                                   "exact_low": None, "exact_high": None, "exact": None}  # fmt: skip
    if exact is not None:
        exact_probs = [0.0] * len(groups)
        for o in exact.outcomes:
            exact_probs[label[read(o.text)]] += float(o.prob or 0.0)
            m = by_item[read(o.text)]
            m.exact_prob = (m.exact_prob or 0.0) + float(o.prob or 0.0)
        unexplored = 0.0 if exact_complete else max(0.0, float(exact.unexplored))
        bounds = exact_semantic_entropy(exact_probs, unexplored, log_k)
        se.update(exact_low=bounds.low, exact_high=bounds.high, exact=bounds.value)
        exact_info = {"unexplored": unexplored, "found": math.fsum(exact_probs), "known_terms": bounds.known,
                      "log_max_completions": log_k, "complete": exact_complete,
                      "max_new_tokens": exact.max_new_tokens, "vocab_size": exact.vocab_size}  # fmt: skip
        if samples is None:  # the found completions, normalised: what a weighted estimate from them would say
            total = math.fsum(exact_probs)
            se["weighted"] = math.fsum(-(q / total) * math.log(q / total) for q in exact_probs if q > 0) if total > 0 else None
    total_weight = math.fsum(weighted_mass)
    clusters = []
    for c, group in enumerate(members):
        count = sum(m.count for m in group)
        weighted = weighted_mass[c] / total_weight if samples is not None and weighted_known and total_weight > 0 else None
        exact_p = exact_probs[c] if exact_probs is not None else None
        low, high = wilson_interval(count, n) if n else (None, None)
        clusters.append(Cluster(c, [m.answer for m in group], count, exact_p if exact_p is not None else weighted,
                                count / n if n else None, weighted, exact_p, low, high, group))  # fmt: skip
    # Listed largest first (samples: by count; an enumeration: by exact probability), numbered in that order.
    clusters.sort(key=lambda c: (-c.count, -(c.prob or 0.0), c.cluster) if samples is not None else (-(c.prob or 0.0), c.cluster))
    for rank, c in enumerate(clusters):
        c.cluster = rank
    sets = measures.get("num_semantic_sets") if samples is not None else len(groups)
    prompt = samples.prompt if samples is not None else exact.prompt if exact is not None else ""
    return SemanticResult(
        prompt=prompt, judge=str(judge.spec), threshold=judge.threshold, extract=None if extract is None else str(extract),
        source="samples" if samples is not None else "enumeration", n=n, clusters=clusters, semantic_entropy=se,
        num_semantic_sets=int(sets or 0),
        predictive_entropy={"naive": measures.get("naive"), "length_normalised": measures.get("length_normalised")},
        intervals=intervals,
        bootstrap={"resamples": resamples, "level": level, "seed": seed,
                   "method": "percentile interval of the resampled estimates, shifted by the estimated bias"} if samples is not None else {},
        convergence=convergence, exact=exact_info, judged_pairs=judge.asked,
    )  # fmt: skip


def _grouped(outcomes: Outcomes, extract: AnswerSpec | None) -> list[tuple[str, list[Outcome]]]:
    """The items of `outcomes` with their completions, in clustering order: the answers as
    `Outcomes.answers` reads and orders them; without a spec, each completion's body (its text less
    the end-of-sequence token's), most frequent (samples) or most probable (enumeration) first."""
    if extract is not None:
        return [(a.answer, a.completions) for a in outcomes.answers(extract)]
    grouped: dict[str, list[Outcome]] = {}
    for o in outcomes.outcomes:
        grouped.setdefault(o.body, []).append(o)

    def key(kv: tuple[str, list[Outcome]]) -> tuple[Any, ...]:
        count, prob = sum(o.count for o in kv[1]), math.fsum(o.prob or 0.0 for o in kv[1])
        return (-prob, kv[0]) if outcomes.exact else (-count, -prob, kv[0])
    return sorted(grouped.items(), key=key)


def _sampled(samples: Outcomes, read: Any, label: dict[str, int]) -> Sampled:
    """The per-sample arrays of the measures. Distinct completions are told apart by text (two token
    sequences that decode alike count as one, with the sum of their probabilities)."""
    index: dict[str, int] = {}
    probs: list[float | None] = []
    clusters: list[int] = []
    for o in samples.outcomes:
        k = index.get(o.text)
        if k is None:
            index[o.text] = len(probs)
            probs.append(o.prob)
            clusters.append(label[read(o.text)])
        elif probs[k] is not None:
            probs[k] = None if o.prob is None else probs[k] + o.prob  # type: ignore[operator]
    return Sampled.of(
        [label[read(t)] for t in samples.sample_texts], [index[t] for t in samples.sample_texts], probs, clusters,
        samples.sample_logprobs, samples.sample_lengths,
    )  # fmt: skip
