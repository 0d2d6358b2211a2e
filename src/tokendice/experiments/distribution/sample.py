"""Sample many completions of one or more prompts and store every one of them.

Two methods with the same distribution: `independent` (sample i has its own random
stream, so any subset can be recomputed identically: that is how a run resumes)
and `branching` (samples split among distinct prefixes; deterministic for a seed,
so a resumed branching run recomputes and stores what is missing). Samples are
committed to the store in batches: a killed run loses at most the batch in flight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, Sequence

from tokendice.engines.base import Engine
from tokendice.engines.blackbox import check_blackbox_request
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.decoding.decode import Completion, decode_chunks
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.experiments.distribution.blackbox import BlackBoxSampling, blackbox_manifest
from tokendice.params import RandomSpec, SamplingParams, require_bool, require_choice, require_int
from tokendice.store import SampleRecord, Store

METHODS = ("independent", "branching")


@dataclass(frozen=True)
class SampleSpec:
    """Everything that determines a sample run's results (kept in its manifest)."""

    prompts: tuple[str, ...]
    params: SamplingParams
    n: int
    seed: int = 0
    rng: str = "per-sample"
    method: str = "independent"
    chat: bool = False
    batch_size: int = 250

    def __post_init__(self) -> None:
        if not self.prompts or any(not isinstance(p, str) or not p.strip() for p in self.prompts):
            raise ParameterError("every prompt must be a non-empty string", param="prompt")
        if not isinstance(self.params, SamplingParams):
            raise ParameterError(f"params must be a SamplingParams, got {type(self.params).__name__}", param="params")
        require_int("n", self.n, 1)
        require_choice("method", self.method, METHODS)
        require_int("batch_size", self.batch_size, 1)
        require_bool("chat", self.chat)
        RandomSpec(self.seed, self.rng)
        if self.method == "branching" and self.rng != "per-sample":
            raise ParameterError("the branching sampler draws per prefix: use rng='per-sample'", param="rng")

    def to_manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data["prompts"] = list(self.prompts)
        data["params"] = self.params.to_dict()
        return data

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> SampleSpec:
        fields = dict(data)
        fields["prompts"] = tuple(fields["prompts"])
        fields["params"] = SamplingParams.from_dict(fields["params"])
        return cls(**fields)


Progress = Callable[[int], None]
"""Called with the number of samples just completed."""


class SampleSink(Protocol):
    """Where drawn samples go: the run store, or memory (`save=False`)."""

    def stored(self, prompt_index: int) -> set[int]: ...
    def add(self, batch: list[SampleRecord], server: dict[str, Any] | None) -> None: ...
    def server_report(self) -> dict[str, Any] | None: ...


class StoreSink:
    """Samples committed to a stored run, one transaction per batch. A black-box run's
    consistency tally goes in the same transaction as the samples it counts, so a killed
    process leaves the two in step."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id

    def stored(self, prompt_index: int) -> set[int]:
        return self.store.sample_ids(self.run_id, prompt_index=prompt_index)

    def add(self, batch: list[SampleRecord], server: dict[str, Any] | None) -> None:
        self.store.add_samples(self.run_id, batch, results={"server": server} if server is not None else None)

    def server_report(self) -> dict[str, Any] | None:
        return self.store.get_result(self.run_id, "server")


class MemorySink:
    """Samples kept in memory (nothing written)."""

    def __init__(self) -> None:
        self.samples: list[SampleRecord] = []
        self.server: dict[str, Any] | None = None

    def stored(self, prompt_index: int) -> set[int]:
        return {s.sample_id for s in self.samples if s.prompt_index == prompt_index}

    def add(self, batch: list[SampleRecord], server: dict[str, Any] | None) -> None:
        self.samples.extend(batch)
        if server is not None:
            self.server = server

    def server_report(self) -> dict[str, Any] | None:
        return self.server

    def ordered(self) -> list[SampleRecord]:
        return sorted(self.samples, key=lambda s: (s.prompt_index, s.sample_id))


def start_sample_run(store: Store, engine: Engine, spec: SampleSpec, analysis: dict[str, Any] | None = None) -> str:
    """Create the run (status 'running') with its full manifest; returns the run id."""
    extra: dict[str, Any] = {"sample": spec.to_manifest()}
    if analysis is not None:
        extra["analysis"] = analysis
    if not engine.kind.white_box:
        extra.update(blackbox_manifest(engine, spec))  # type: ignore[arg-type]
    prompt = spec.prompts[0] if len(spec.prompts) == 1 else f"{len(spec.prompts)} prompts"
    return store.start_run("sample", prompt, engine.describe(), spec.params.to_dict(), extra, n_requested=spec.n * len(spec.prompts))


def load_sample_spec(store: Store, run_id: str) -> SampleSpec:
    run = store.get_run(run_id)
    if run.kind != "sample" or "sample" not in run.manifest:
        raise StoreError(f"run {run.id} is a {run.kind} run, not a sample run")
    return SampleSpec.from_manifest(run.manifest["sample"])


def draw_samples(engine: Engine, spec: SampleSpec, sink: SampleSink, progress: Progress | None = None) -> dict[str, Any] | None:
    """Compute every sample of `spec` that `sink` lacks and hand it over in batches. Returns
    the server's report for a black-box engine (what it is, the consistency check), else None."""
    if not engine.kind.white_box:
        check_blackbox_request(engine, spec.rng, spec.chat, spec.method)
    blackbox = BlackBoxSampling(engine, spec.params, spec.seed) if not engine.kind.white_box else None  # type: ignore[arg-type]
    previous = sink.server_report()
    for index, prompt in enumerate(spec.prompts):
        missing = sorted(set(range(spec.n)) - sink.stored(index))
        if not missing:
            continue
        # the branching sampler reports finished samples as it goes (when it computes only what is missing)
        inner = progress if spec.method == "branching" and len(missing) == spec.n else None
        for batch in _records(engine, blackbox, index, prompt, spec, missing, inner):
            sink.add(batch, blackbox.report(previous) if blackbox is not None else None)
            if progress is not None and inner is None:
                progress(len(batch))
    return blackbox.report(previous) if blackbox is not None else None


def _records(engine: Engine, blackbox: Any, index: int, prompt: str, spec: SampleSpec, missing: Sequence[int], progress: Progress | None):
    """Batches of records to store: decoded here (white-box), or received from a server."""
    if blackbox is not None:
        yield from blackbox.batches(prompt, index, missing, spec.batch_size)
        return
    token_text = TokenText(engine)
    prompt_ids = encode_prompt(engine.tokenizer, prompt, spec.chat)
    for batch in _completions(engine, prompt_ids, spec, missing, progress):
        yield [_record(c, index, token_text) for c in batch]


def _completions(engine: Engine, prompt_ids: list[int], spec: SampleSpec, missing: Sequence[int], progress: Progress | None):
    if spec.method == "independent":
        import torch

        if spec.rng == "torch":
            torch.manual_seed(spec.seed)
        yield from decode_chunks(engine, prompt_ids, spec.params, RandomSpec(spec.seed, spec.rng), missing, spec.batch_size)
        return
    from tokendice.experiments.decoding.branching import branch_sample

    wanted = set(missing)
    completions = [c for c in branch_sample(engine, prompt_ids, spec.params, spec.n, spec.seed, progress) if c.sample_id in wanted]
    for start in range(0, len(completions), spec.batch_size):
        yield completions[start : start + spec.batch_size]


class TokenText:
    """Decoded text of single tokens, memoised (the same tokens recur across samples)."""

    def __init__(self, engine: Engine) -> None:
        self._decode = engine.tokenizer.decode
        self._cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        text = self._cache.get(token)
        if text is None:
            text = self._cache[token] = self._decode([token])
        return text

    def full(self, tokens: list[int]) -> str:
        return self._decode(tokens)


def _record(c: Completion, prompt_index: int, token_text: TokenText) -> SampleRecord:
    return SampleRecord(
        sample_id=c.sample_id,
        tokens=c.tokens,
        token_texts=[token_text(t) for t in c.tokens],
        text=token_text.full(c.tokens),
        model_logprobs=c.model_logprobs,
        sampling_logprobs=c.sampling_logprobs,
        finish_reason=c.finish_reason,
        prompt_index=prompt_index,
    )
