"""Sample many completions of one or more prompts and store every one of them.

Two methods with the same distribution: `independent` (sample i has its own random
stream, so any subset can be recomputed identically: that is how `--resume` works)
and `branching` (samples split among distinct prefixes; deterministic for a seed,
so a resumed branching run recomputes and stores what is missing). Samples are
committed to the store in batches: a killed run loses at most the batch in flight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from tokendice.engines.base import Engine
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.decoding.decode import Completion, decode_chunks
from tokendice.experiments.decoding.prompting import encode_prompt
from tokendice.params import RandomSpec, SamplingParams
from tokendice.store import SampleRecord, Store, build_manifest

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
        if not self.prompts or any(not p or not p.strip() for p in self.prompts):
            raise ParameterError("every prompt must be a non-empty string")
        if self.n < 1:
            raise ParameterError(f"n must be >= 1, got {self.n}")
        if self.method not in METHODS:
            raise ParameterError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.method == "branching" and self.rng != "per-sample":
            raise ParameterError("the branching sampler draws per prefix: use --rng per-sample")
        RandomSpec(self.seed, self.rng)

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


def start_sample_run(store: Store, engine: Engine, spec: SampleSpec) -> str:
    """Create the run (status 'running') with its full manifest; returns the run id."""
    extra: dict[str, Any] = {"sample": spec.to_manifest()}
    if not engine.kind.white_box:
        from tokendice.experiments.trace.blackbox import blackbox_manifest

        extra.update(blackbox_manifest(engine, spec))  # type: ignore[arg-type]
    manifest = build_manifest("sample", spec.params.to_dict(), engine.describe(), extra)
    prompt = spec.prompts[0] if len(spec.prompts) == 1 else f"{len(spec.prompts)} prompts"
    return store.create_run("sample", manifest, prompt, engine.name, engine.model_id, n_requested=spec.n * len(spec.prompts))


def load_sample_spec(store: Store, run_id: str) -> SampleSpec:
    run = store.get_run(run_id)
    if run.kind != "sample" or "sample" not in run.manifest:
        raise StoreError(f"run {run.id} is a {run.kind} run, not a sample run")
    return SampleSpec.from_manifest(run.manifest["sample"])


def fill_sample_run(store: Store, engine: Engine, run_id: str, progress: Progress | None = None) -> None:
    """Compute and store every sample of the run that is not stored yet."""
    run = store.get_run(run_id)
    spec = load_sample_spec(store, run_id)
    if (run.engine, run.model) != (engine.name, engine.model_id):
        raise ParameterError(f"run {run.id} was made with {run.engine}/{run.model}, not {engine.name}/{engine.model_id}")
    if spec.rng == "torch" and store.count_samples(run.id):
        raise ParameterError("a run with --rng torch cannot be resumed identically: use --rng per-sample")
    store.set_status(run.id, "running")
    blackbox = None
    if not engine.kind.white_box:  # a server: it samples, tokendice stores what it reports
        from tokendice.experiments.trace.blackbox import BlackBoxSampling

        blackbox = BlackBoxSampling(engine, spec.params, spec.seed)  # type: ignore[arg-type]
    try:
        for index, prompt in enumerate(spec.prompts):
            missing = sorted(set(range(spec.n)) - store.sample_ids(run.id, prompt_index=index))
            if progress is not None:
                progress(spec.n - len(missing))
            if not missing:
                continue
            for batch in _records(engine, blackbox, index, prompt, spec, missing, progress):
                store.add_samples(run.id, batch)
                if progress is not None and spec.method == "independent":
                    progress(len(batch))
    except BaseException:
        store.set_status(run.id, "interrupted")
        raise
    finally:
        if blackbox is not None:
            store.save_result(run.id, "server", blackbox.report(store.get_result(run.id, "server")))
    store.set_status(run.id, "complete")


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
