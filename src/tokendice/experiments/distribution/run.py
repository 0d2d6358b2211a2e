"""A sample run as a result: what N completions per prompt say about the distribution.

`SampleRun` holds, per prompt, the distinct completions with counts, Wilson
intervals and exact probabilities, the goodness-of-fit test, where samples spread,
and the optional next-token check after a prefix (`at_prefix`). The raw samples
stay on the object (`run.samples`), out of `to_dict()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Sequence

from tokendice.analysis import tarr_at_n
from tokendice.engines.base import Engine
from tokendice.experiments.distribution.analysis import SampleAnalysis, analyze_samples, check_prefix
from tokendice.experiments.distribution.blackbox import consistency_warning
from tokendice.experiments.distribution.sample import SampleSpec
from tokendice.experiments.results import Result, clip
from tokendice.jsonutil import finite_json
from tokendice.store import SampleRecord


@dataclass(frozen=True)
class AnalysisOptions:
    """How a run's samples are analysed (not what they are): kept in the manifest, so a resumed
    run is analysed as it was asked to be, unless the caller asks anew."""

    at_prefix: str | None = None  # next-token frequencies right after this generated text
    exact: bool = False  # test against an exact enumeration (else the recorded probabilities)
    mass: float = 0.99  # with exact: the mass to enumerate
    max_nodes: int = 2000  # with exact: prefixes to expand at most

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, data: dict[str, Any] | None) -> AnalysisOptions:
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


@dataclass(repr=False)
class SampleRun(Result):
    """N completions per prompt and what they say: per prompt (`analyses`, "prompts" in
    `to_dict`) the distinct completions, most frequent first, with counts, shares, 95% Wilson
    intervals and exact probabilities under the sampling distribution, a goodness-of-fit test,
    the spread by step, and the `at_prefix` check. `samples` holds every sampled completion
    (a `SampleRecord` each, ordered by prompt and sample id); it is not part of `to_dict()`.

    `to_dataframe()`: one row per distinct completion per prompt (columns `COLUMNS`):
    prompt_index, prompt, rank (1 = most frequent), text, count, share (count / n),
    ci_low / ci_high (95% Wilson interval of the share), exact_prob (under the sampling
    distribution; None when unknown), n (samples of that prompt).
    """

    kind: ClassVar[str] = "sample"
    COLUMNS: ClassVar[tuple[str, ...]] = ("prompt_index", "prompt", "rank", "text", "count", "share", "ci_low", "ci_high", "exact_prob", "n")

    method: str
    params: dict[str, Any]
    seed: int
    rng: str
    n_per_prompt: int
    tarr_at_n: float | None
    analyses: list[SampleAnalysis] = field(default_factory=list)
    engine: str = ""
    model: str = ""
    server: dict[str, Any] | None = None  # black-box runs: what the server is and the consistency check
    warnings: list[str] = field(default_factory=list)
    run_id: str | None = None
    samples: list[SampleRecord] = field(default_factory=list, compare=False)

    @property
    def prompts(self) -> list[str]:
        return [a.prompt for a in self.analyses]

    @property
    def n(self) -> int:
        """Samples in the run, over all prompts."""
        return sum(a.n for a in self.analyses)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind, "run_id": self.run_id, "engine": self.engine, "model": self.model, "method": self.method,
            "params": self.params, "seed": self.seed, "rng": self.rng, "n_per_prompt": self.n_per_prompt,
            "tarr_at_n": self.tarr_at_n, "prompts": [a.to_dict() for a in self.analyses],
        }  # fmt: skip
        if self.server is not None:
            data["server"] = self.server
            data["warnings"] = list(self.warnings)
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRun:
        return cls(
            method=data["method"], params=dict(data["params"]), seed=data["seed"], rng=data["rng"], n_per_prompt=data["n_per_prompt"],
            tarr_at_n=data.get("tarr_at_n"), analyses=[SampleAnalysis.from_dict(a) for a in data["prompts"]],
            engine=data.get("engine", ""), model=data.get("model", ""), server=data.get("server"),
            warnings=list(data.get("warnings") or []), run_id=data.get("run_id"),
        )  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"prompt_index": i, "prompt": a.prompt, "rank": rank, "text": c.text, "count": c.frequency.count, "share": c.frequency.share,
             "ci_low": c.frequency.low, "ci_high": c.frequency.high, "exact_prob": c.exact_prob, "n": a.n}
            for i, a in enumerate(self.analyses)
            for rank, c in enumerate(a.completions, 1)
        ]  # fmt: skip

    def headline(self) -> str:
        model = f" · {self.model}" if self.model else ""
        if len(self.analyses) == 1:
            a = self.analyses[0]
            top = f" · top {clip(a.top.text, 30)} {a.top.frequency.share:.1%}" if a.top is not None else ""
            return f"{clip(a.prompt, 40)} · n={a.n} · {a.distinct} distinct{top}{model}"
        tarr = "–" if self.tarr_at_n is None else f"{self.tarr_at_n:.3f}"
        return f"{len(self.analyses)} prompts · n={self.n_per_prompt} each · TARr@{self.n_per_prompt} {tarr}{model}"


def summarise(
    spec: SampleSpec,
    samples: Sequence[SampleRecord],
    *,
    engine_name: str,
    model: str,
    white_box: bool,
    options: AnalysisOptions = AnalysisOptions(),
    engine: Engine | None = None,
    server: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> SampleRun:
    """The run's analysis. `engine` (white-box) is needed for `options.exact` and
    `options.at_prefix`; without it (a stored run read back) they are left out."""
    from tokendice.experiments.decoding.enumerate import enumerate_completions, next_token_distribution
    from tokendice.experiments.decoding.prompting import encode_prompt

    by_prompt: list[list[SampleRecord]] = [[] for _ in spec.prompts]
    for s in samples:
        by_prompt[s.prompt_index].append(s)
    analyses = []
    for index, prompt in enumerate(spec.prompts):
        prompt_samples = by_prompt[index]
        prompt_ids = encode_prompt(engine.tokenizer, prompt, spec.chat) if engine is not None and white_box else []
        exact = None
        if options.exact and engine is not None and white_box:
            exact = enumerate_completions(engine, prompt_ids, spec.params, mass=options.mass, max_nodes=options.max_nodes)
        # A server's greedy samples are not known to be deterministic: no p = 1 for them.
        analysis = analyze_samples(prompt_samples, exact, greedy=spec.params.greedy and white_box, prompt=prompt)
        if options.at_prefix is not None and engine is not None and white_box:
            loaded = engine
            analysis.at_prefix = check_prefix(
                prompt_samples,
                options.at_prefix,
                lambda prefix, ids=prompt_ids: next_token_distribution(loaded, ids, prefix, spec.params),
                lambda t: loaded.tokenizer.decode([t]),
                loaded.tokenizer.eos_token_ids,
            )
        analyses.append(analysis)
    outputs = [[s.text for s in group] for group in by_prompt]
    warning = consistency_warning(server) if server is not None else None
    return SampleRun(
        method=spec.method, params=spec.params.to_dict(), seed=spec.seed, rng=spec.rng, n_per_prompt=spec.n,
        tarr_at_n=tarr_at_n(outputs) if all(outputs) else None, analyses=analyses, engine=engine_name, model=model,
        server=server, warnings=[warning] if warning else [], run_id=run_id, samples=list(samples),
    )  # fmt: skip
