"""Trace and sample on a black-box engine (an OpenAI-compatible server).

The server samples on its side, so tokendice records what it reports: the chosen
tokens, their logprobs and the top candidates, labelled with the distribution the
server's logprobs come from (`engines.blackbox.LOGPROBS_DISTRIBUTION`). Every
sampler setting is sent explicitly and kept in the manifest, and each completion is
checked against the reported logprobs (`check_consistency`). What cannot be done
without logits (per-stage attribution, exact probabilities, branching) says so.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

from tokendice.engines.blackbox import BlackBoxCompletion, BlackBoxEngine, check_consistency
from tokendice.errors import EngineError, ParameterError
from tokendice.store.jsonutil import finite_json
from tokendice.params import SamplingParams
from tokendice.store import SampleRecord, Store, build_manifest

NO_ATTRIBUTION = (
    "per-stage attribution (which sampler stage removed or reweighted a token) needs white-box logits: "
    "a server reports only the chosen token and its top logprobs; use --engine hf or --engine llamacpp"
)
LABELS = {"raw": "model", "processed": "sampling", "temperature-scaled": "model at temperature", "unknown": "reported"}
"""How each reported distribution is named in tables: p(model), p(sampling), ..."""
SAMPLE_TOP_LOGPROBS = 5
"""Top logprobs asked for each sampled token: enough for the consistency check."""
MAX_EXAMPLES = 5


def is_white_box(engine: Any) -> bool:
    return bool(getattr(engine, "white_box", True))


def require_white_box(engine: Any, what: str) -> None:
    """Raise EngineError, in one line, when `what` needs logits the engine cannot give."""
    if not is_white_box(engine):
        raise EngineError(
            f"{what} needs next-token logits, and the {engine.name} engine (a server) only returns sampled "
            "tokens with at most 20 logprobs each: use --engine hf or --engine llamacpp"
        )


def check_blackbox_request(engine: Any, rng_mode: str, chat: bool, method: str = "independent") -> None:
    """What a server can run: per-sample seeds, independent samples, chat only through its chat endpoint."""
    if rng_mode != "per-sample":
        raise ParameterError("--rng torch draws from torch's generator, which a server does not use: use --rng per-sample")
    if method != "independent":
        raise EngineError(
            "the branching sampler splits samples by next-token distributions, which needs logits; "
            f"the {engine.name} engine only returns samples: use --method independent"
        )
    if chat != (getattr(engine, "endpoint", "completions") == "chat"):
        raise ParameterError("on the openai engine --chat means the server's chat endpoint (endpoint='chat'), and only it")


def text_token_id(text: str) -> int:
    """A stand-in id for a token the server named only by its text: -1 - crc32(text),
    negative so it never passes for a real id; the same text always gets the same id."""
    return -1 - zlib.crc32(text.encode("utf-8"))


def finish_reason(reported: str | None) -> str:
    """tokendice's names: a server's "stop" (no stop strings are sent) is the end-of-sequence token."""
    return {"stop": "eos", "length": "length", None: "unknown"}.get(reported, str(reported))


@dataclass
class BlackBoxStep:
    """One generated token as the server reported it."""

    step: int
    text: str
    token_id: int | None  # None: the server reported text only
    logprob: float | None
    rank: int | None  # 1 = the best reported candidate; None: not among those reported
    top: list[tuple[str, float]]  # reported candidates, best first
    top_mass: float  # probability held by the reported candidates

    @property
    def prob(self) -> float | None:
        return None if self.logprob is None else math.exp(self.logprob)


@dataclass
class BlackBoxTrace:
    """A trace on a black-box engine: reported logprobs, no per-stage attribution."""

    prompt: str
    engine: str
    model: str
    params: dict[str, Any]
    seed: int
    request_seed: int | None
    logprobs_distribution: dict[str, str]  # {"distribution": ..., "source": ...}
    request: dict[str, Any]  # every sampler field sent
    server: dict[str, Any]  # what the engine knows about the server (describe())
    steps: list[BlackBoxStep] = field(default_factory=list)
    finish_reason: str = "unknown"
    reported_finish_reason: str | None = None
    text: str = ""
    system_fingerprint: str | None = None
    warnings: list[str] = field(default_factory=list)
    note: str = NO_ATTRIBUTION

    @property
    def distribution(self) -> str:
        return self.logprobs_distribution.get("distribution", "unknown")

    @property
    def label(self) -> str:
        return LABELS.get(self.distribution, "reported")

    @property
    def reported_logprob(self) -> float | None:
        """Sum of the chosen tokens' reported logprobs (None if any is missing)."""
        values = [s.logprob for s in self.steps]
        return None if any(v is None for v in values) else math.fsum(values)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["white_box"] = False
        for step, s in zip(data["steps"], self.steps):
            step["prob"] = s.prob
            step["top"] = [{"text": t, "logprob": lp, "prob": math.exp(lp)} for t, lp in s.top]
        data["summary"] = {"n_tokens": len(self.steps), "reported_logprob": self.reported_logprob, "distribution": self.distribution}
        return finite_json(data)  # JSON has no inf: null

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def run_blackbox_trace(
    engine: BlackBoxEngine, prompt: str, params: SamplingParams, seed: int = 0, rng_mode: str = "per-sample", top: int = 5, chat: bool = False
) -> BlackBoxTrace:
    """One completion from the server (sample id 0 of `seed`), every step as reported."""
    check_blackbox_request(engine, rng_mode, chat)
    c = engine.generate(prompt, params, seed, 0, top_logprobs=top)
    distribution = engine.logprobs_distribution  # type: ignore[attr-defined]
    described = engine.describe()
    trace = BlackBoxTrace(
        prompt=prompt, engine=engine.name, model=engine.model_id, params=params.to_dict(), seed=seed,
        request_seed=c.seed, logprobs_distribution=dict(described.get("logprobs_distribution") or {"distribution": distribution}),
        request=engine.sampler_fields(params), server=described,  # type: ignore[attr-defined]
        finish_reason=finish_reason(c.finish_reason), reported_finish_reason=c.finish_reason, text=c.text,
        system_fingerprint=c.system_fingerprint,
    )  # fmt: skip
    ids = c.token_ids if c.token_ids is not None and len(c.token_ids) == len(c.tokens) else None
    for i, piece in enumerate(c.tokens):
        lp = c.logprobs[i] if i < len(c.logprobs) else None
        top_i = c.top_logprobs[i] if i < len(c.top_logprobs) else []
        rank = next((r for r, (t, _) in enumerate(top_i, 1) if t == piece), None)
        mass = math.fsum(math.exp(v) for _, v in top_i)
        trace.steps.append(BlackBoxStep(i, piece, ids[i] if ids else None, lp, rank, list(top_i), mass))
    trace.warnings = check_consistency(c, params, distribution, prompt)
    return trace


def store_blackbox_trace(store: Store, engine: BlackBoxEngine, trace: BlackBoxTrace) -> str:
    """Keep a black-box trace as a run: sample 0 in the samples table (what `tokendice diff`
    reads), the trace as result 'blackbox_trace'."""
    extra = {
        "trace": {"prompt": trace.prompt, "seed": trace.seed, "rng": "per-sample", "top": max((len(s.top) for s in trace.steps), default=0),
                  "chat": getattr(engine, "endpoint", "") == "chat"},
        "request": {"sampler_fields": trace.request, "seed": trace.request_seed, **_request_info(engine)},
    }  # fmt: skip
    manifest = build_manifest("trace", trace.params, engine.describe(), extra)
    run_id = store.create_run("trace", manifest, trace.prompt, engine.name, engine.model_id, n_requested=1)
    steps = trace.steps
    ids = [s.token_id for s in steps] if all(s.token_id is not None for s in steps) else None
    record = sample_record(0, 0, [s.text for s in steps], ids, [s.logprob for s in steps], trace.text,
                           trace.reported_finish_reason, trace.distribution)
    store.add_samples(run_id, [record])
    store.save_result(run_id, "blackbox_trace", trace.to_dict())  # not "trace": its steps have no per-stage fields
    store.set_status(run_id, "complete")
    return run_id


def completion_record(c: BlackBoxCompletion, prompt_index: int, distribution: str) -> SampleRecord:
    """A completion as a stored sample (see `sample_record`)."""
    return sample_record(c.sample_id, prompt_index, c.tokens, c.token_ids, c.logprobs, c.text, c.finish_reason, distribution)


def sample_record(
    sample_id: int, prompt_index: int, tokens: Sequence[str], token_ids: Sequence[int] | None,
    logprobs: Sequence[float | None], text: str, reported_finish: str | None, distribution: str,
) -> SampleRecord:
    """A stored sample: each reported logprob goes in the column of its distribution (model if
    raw, sampling if processed, otherwise neither: null); ids the server did not report are
    `text_token_id`s."""
    ids = list(token_ids) if token_ids is not None and len(token_ids) == len(tokens) else [text_token_id(t) for t in tokens]
    reported = [float(v) if v is not None else math.nan for v in list(logprobs)[: len(tokens)]]
    reported += [math.nan] * (len(tokens) - len(reported))
    nan = [math.nan] * len(tokens)
    return SampleRecord(
        sample_id=sample_id, tokens=[int(t) for t in ids], token_texts=list(tokens), text=text,
        model_logprobs=reported if distribution == "raw" else nan,
        sampling_logprobs=reported if distribution == "processed" else nan,
        finish_reason=finish_reason(reported_finish), prompt_index=prompt_index,
    )  # fmt: skip


def _request_info(engine: Any) -> dict[str, Any]:
    return {
        "endpoint": getattr(engine, "endpoint", None),
        "seed_rule": "sample i of seed s sends request_seed(s, i): 31 bits of tokendice's per-sample stream hash",
    }


def blackbox_manifest(engine: BlackBoxEngine, spec: Any) -> dict[str, Any]:
    """Manifest entries of a black-box sample run. Checks the spec, and asks the server
    (GET /models) which software it is, since the fields sent depend on it."""
    check_blackbox_request(engine, spec.rng, spec.chat, spec.method)
    engine.verify()  # type: ignore[attr-defined]
    fields = engine.sampler_fields(spec.params)  # type: ignore[attr-defined]
    return {"request": {"sampler_fields": fields, "top_logprobs": SAMPLE_TOP_LOGPROBS, **_request_info(engine)}}


class BlackBoxSampling:
    """Samples from a server as stored records, with the consistency check on each."""

    def __init__(self, engine: BlackBoxEngine, params: SamplingParams, seed: int) -> None:
        self.engine, self.params, self.seed = engine, params, seed
        self.distribution: str = engine.logprobs_distribution  # type: ignore[attr-defined]
        self.checked = 0
        self.contradicting: list[str] = []  # "prompt_index:sample_id"
        self.examples: list[str] = []

    def batches(self, prompt: str, prompt_index: int, sample_ids: Sequence[int], batch_size: int) -> Iterator[list[SampleRecord]]:
        """Records in batches of at most min(batch_size, concurrency), as completions arrive.
        When the server fails, the completions already received are yielded first."""
        size = max(1, min(batch_size, getattr(self.engine, "concurrency", batch_size)))
        batch: list[SampleRecord] = []
        stream = self.engine.generate_many(prompt, self.params, self.seed, list(sample_ids), top_logprobs=SAMPLE_TOP_LOGPROBS)
        try:
            for c in stream:
                self._check(c, prompt, prompt_index)
                batch.append(completion_record(c, prompt_index, self.distribution))
                if len(batch) >= size:
                    full, batch = batch, []
                    yield full
        except GeneratorExit:
            raise
        except BaseException:
            if batch:  # keep what arrived before the failure
                yield batch
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if batch:
            yield batch

    def _check(self, c: BlackBoxCompletion, prompt: str, prompt_index: int) -> None:
        self.checked += 1
        warnings = check_consistency(c, self.params, self.distribution, prompt)
        if warnings:
            self.contradicting.append(f"{prompt_index}:{c.sample_id}")
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(f"sample {c.sample_id}: {warnings[0]}")

    def report(self, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the server reported and what the check found, merged with an earlier report (a resume)."""
        before = (previous or {}).get("consistency") or {}
        contradicting = sorted(set(before.get("contradicting", [])) | set(self.contradicting))
        return {
            "server": self.engine.describe(),
            "consistency": {
                "checked": int(before.get("checked", 0)) + self.checked,
                "contradicting": contradicting,
                "examples": (list(before.get("examples", [])) + self.examples)[:MAX_EXAMPLES],
                "distribution": self.distribution,
            },
        }


def consistency_warning(report: dict[str, Any] | None) -> str | None:
    """One line for stderr when sampled completions contradict the reported logprobs."""
    found = (report or {}).get("consistency") or {}
    bad = found.get("contradicting") or []
    if not bad:
        return None
    example = (found.get("examples") or [""])[0]
    return (f"{len(bad)} of {found.get('checked', '?')} samples contradict the reported logprobs under the requested "
            f"settings (the server processed them in a way not requested); e.g. {example}")  # fmt: skip


def resume_options(described: dict[str, Any], base_url: str | None, api_key_env: str) -> dict[str, Any]:
    """Options to rebuild a run's openai engine from its manifest: the server address
    (unless `base_url` moves it), endpoint and limits. The key's variable comes from the caller."""
    url = base_url or described.get("base_url")
    if not url:
        raise ParameterError("this run's manifest has no base_url: pass --base-url")
    options: dict[str, Any] = {"base_url": url, "api_key_env": api_key_env}
    for key in ("endpoint", "timeout", "max_retries", "concurrency"):
        if described.get(key) is not None:
            options[key] = described[key]
    if described.get("server") not in (None, "unknown"):
        options["server"] = described["server"]
    return options

