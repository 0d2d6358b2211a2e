"""A trace on a black-box engine (an OpenAI-compatible server).

The server samples on its side, so tokendice records what it reports: the chosen
tokens, their logprobs and the top candidates, labelled with the distribution the
server's logprobs come from (`engines.blackbox.LOGPROBS_DISTRIBUTION`). Every
sampler setting is sent explicitly and kept in the manifest, and the completion is
checked against the reported logprobs (`check_consistency`). What cannot be done
without logits (per-stage attribution) says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.engines.blackbox import BlackBoxEngine, check_blackbox_request, check_consistency, finish_reason
from tokendice.experiments.distribution.blackbox import request_info, sample_record
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.params import SamplingParams
from tokendice.store import Store

NO_ATTRIBUTION = (
    "per-stage attribution (which sampler stage removed or reweighted a token) needs white-box logits: "
    "a server reports only the chosen token and its top logprobs; use engine='hf' or engine='llamacpp'"
)


LABELS = {"raw": "model", "processed": "sampling", "temperature-scaled": "model at temperature", "unknown": "reported"}
"""How each reported distribution is named in tables: p(model), p(sampling), ..."""


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlackBoxStep:
        top = [(t["text"], -math.inf if t["logprob"] is None else t["logprob"]) for t in data["top"]]
        return cls(data["step"], data["text"], data["token_id"], data["logprob"], data["rank"], top, data["top_mass"])


@dataclass(repr=False)
class BlackBoxTrace(Result):
    """A trace on a black-box engine: reported logprobs, no per-stage attribution."""

    kind: ClassVar[str] = "blackbox_trace"
    COLUMNS: ClassVar[tuple[str, ...]] = ("step", "token_id", "token", "chosen", "rank", "logprob", "prob", "distribution")

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
    run_id: str | None = None

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
        data = {"kind": self.kind, **asdict(self)}
        data["white_box"] = False
        for step, s in zip(data["steps"], self.steps):
            step["prob"] = s.prob
            step["top"] = [{"text": t, "logprob": lp, "prob": math.exp(lp)} for t, lp in s.top]
        data["summary"] = {"n_tokens": len(self.steps), "reported_logprob": self.reported_logprob, "distribution": self.distribution}
        return finite_json(data)  # JSON has no inf: null

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlackBoxTrace:
        return cls(**init_fields(cls, data, "steps"), steps=[BlackBoxStep.from_dict(s) for s in data["steps"]])

    def rows(self) -> list[dict[str, Any]]:
        """One row per (step, reported token): the chosen one and the server's top candidates."""
        rows = []
        for s in self.steps:
            rows.append({"step": s.step, "token_id": s.token_id, "token": s.text, "chosen": True, "rank": s.rank,
                         "logprob": s.logprob, "prob": s.prob, "distribution": self.distribution})
            for rank, (text, lp) in enumerate(s.top, 1):
                if text != s.text:
                    rows.append({"step": s.step, "token_id": None, "token": text, "chosen": False, "rank": rank,
                                 "logprob": lp, "prob": math.exp(lp), "distribution": self.distribution})
        return rows

    def headline(self) -> str:
        lp = self.reported_logprob
        shown = "unknown" if lp is None else f"{lp:.3f}"
        return (f"{clip(self.prompt, 40)} → {clip(self.text, 50)} · {len(self.steps)} tokens · "
                f"log p({self.label}) {shown} · {self.model} (openai server) seed {self.seed}")


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
    reads), the trace as result 'blackbox_trace'. Sets and returns `trace.run_id`."""
    extra = {
        "trace": {"prompt": trace.prompt, "seed": trace.seed, "rng": "per-sample", "top": max((len(s.top) for s in trace.steps), default=0),
                  "chat": getattr(engine, "endpoint", "") == "chat"},
        "request": {"sampler_fields": trace.request, "seed": trace.request_seed, **request_info(engine)},
    }  # fmt: skip
    run_id = store.start_run("trace", trace.prompt, engine.describe(), trace.params, extra, n_requested=1)
    with store.recording(run_id):
        steps = trace.steps
        ids = [s.token_id for s in steps] if all(s.token_id is not None for s in steps) else None
        record = sample_record(0, 0, [s.text for s in steps], ids, [s.logprob for s in steps], trace.text,
                               trace.reported_finish_reason, trace.distribution)
        store.add_samples(run_id, [record])
        trace.run_id = run_id
        store.save_result(run_id, "blackbox_trace", trace.to_dict())  # not "trace": its steps have no per-stage fields
    return run_id
