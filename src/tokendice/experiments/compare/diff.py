"""Diff two generations: where they fork, what each saw there, and how far their log-probs drifted.

A side is a stored run (`ID`: its trace, or else its sample 0; `ID:SAMPLE`;
`ID:PROMPT:SAMPLE` for a run over a prompt set) or a trace JSON file written by
`tokendice trace --json` (or `Trace.to_json()`). With traces, the divergence step shows
both top-k lists; stored samples carry the chosen tokens' model log-probabilities only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tokendice.analysis.branching import first_divergence
from tokendice.errors import ParameterError, StoreError
from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.store.db import Store

_RUN_SPEC = re.compile(r"([0-9a-fA-F]{4,})(?::(\d+))?(?::(\d+))?")
ENDED = "(end)"
"""The text shown for a side that had stopped where the other went on."""


@dataclass
class DiffSide:
    """One generation: its tokens, their model log-probs, and (from a trace) the top-k per step."""

    source: str
    prompt: str | None
    model: str | None
    engine: str | None
    tokens: list[int]
    token_texts: list[str]
    model_logprobs: list[float | None]  # None: not reported, or -inf
    top: list[list[dict[str, Any]]] | None = None  # per step: {token_id, text, model_prob, model_logprob}
    finish_reason: str | None = None
    condition: str | None = None  # for a sample of an audit: the condition it ran under

    @property
    def text(self) -> str:
        return "".join(self.token_texts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffSide:
        return cls(**init_fields(cls, data))


@dataclass(repr=False)
class RunDiff(Result):
    """Two generations token by token: the first step where they fork, both choices (and both
    top-k lists, from traces) there, and the log-prob drift along their common prefix."""

    kind: ClassVar[str] = "diff"
    COLUMNS: ClassVar[tuple[str, ...]] = ("step", "token_a", "token_b", "logprob_a", "logprob_b", "abs_diff", "diverged")

    a: DiffSide
    b: DiffSide
    first_divergence: int | None  # None: the same tokens
    common_steps: int
    drift: list[dict[str, Any]] = field(default_factory=list)  # per common step: step, token_id, text, logprob_a, logprob_b, abs_diff
    max_drift: float | None = None
    divergence: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None  # a diff reads stored runs and is not stored itself: always None

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, **asdict(self)}
        data["identical"] = self.identical
        data["a"]["text"], data["b"]["text"] = self.a.text, self.b.text
        return finite_json(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunDiff:
        return cls(**init_fields(cls, data, "a", "b"), a=DiffSide.from_dict(data["a"]), b=DiffSide.from_dict(data["b"]))

    def rows(self) -> list[dict[str, Any]]:
        """One row per common step, then the step where the two fork (if they do)."""
        rows = [
            {"step": d["step"], "token_a": d["text"], "token_b": d["text"], "logprob_a": d["logprob_a"],
             "logprob_b": d["logprob_b"], "abs_diff": d["abs_diff"], "diverged": False}
            for d in self.drift
        ]  # fmt: skip
        if self.divergence is not None:
            a, b = self.divergence["a"], self.divergence["b"]
            rows.append({
                "step": self.divergence["step"], "token_a": a["text"] if a["token_id"] is not None else None,
                "token_b": b["text"] if b["token_id"] is not None else None, "logprob_a": a["model_logprob"],
                "logprob_b": b["model_logprob"], "abs_diff": None, "diverged": True,
            })  # fmt: skip
        return rows

    def headline(self) -> str:
        prompt = self.a.prompt if self.a.prompt is not None else self.b.prompt
        parts = [clip(prompt, 40)] if prompt is not None else []
        parts.append(f"{_short(self.a.source)} vs {_short(self.b.source)}")
        if self.identical:
            parts.append(f"identical ({self.common_steps} tokens)")
        else:
            d = self.divergence or {}
            choices = f"{json.dumps(d['a']['text'], ensure_ascii=False)} vs {json.dumps(d['b']['text'], ensure_ascii=False)}" if d else ""
            parts.append(f"first divergence at step {self.first_divergence}: {choices}")
        parts.append("max drift " + ("-" if self.max_drift is None else f"{self.max_drift:.3g}"))
        return " · ".join(parts)


def _short(source: str) -> str:
    """A side's source for a one-line repr: a file by its name."""
    name = Path(source).name if ("/" in source or "\\" in source) else source
    return name if len(name) <= 30 else name[:29] + "…"


class _Stores:
    """The run store, opened only when a side is a run (two trace files need no database)."""

    def __init__(self, store: Store | None, db: Any) -> None:
        self.given, self.db, self.opened = store, db, None

    def get(self) -> Store:
        if self.given is not None:
            return self.given
        if self.opened is None:
            self.opened = Store(self.db)
        return self.opened

    def close(self) -> None:
        if self.opened is not None:
            self.opened.close()


def load_side(spec: str, store: Store | None = None, db: Any = None) -> DiffSide:
    """A side from a trace JSON file or a stored run (`ID`, `ID:SAMPLE`, `ID:PROMPT:SAMPLE`)."""
    stores = _Stores(store, db)
    try:
        return _load_side(spec, stores)
    finally:
        stores.close()


def _load_side(spec: str, stores: _Stores) -> DiffSide:
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ParameterError(f"{spec}: not a JSON file ({exc})") from exc
        return side_from_trace(data, spec)
    match = _RUN_SPEC.fullmatch(spec)
    if match is None:
        raise ParameterError(f"{spec!r} is neither a trace JSON file nor a run id (ID, ID:SAMPLE or ID:PROMPT:SAMPLE)")
    run_id, first, second = match.groups()
    prompt_index, sample = (int(first), int(second)) if second is not None else (0, None if first is None else int(first))
    return _side_from_run(stores.get(), spec, run_id, prompt_index, sample)


def side_from_trace(data: Any, source: str) -> DiffSide:
    """A side from a trace as `Trace.to_dict()` writes it."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ParameterError(f"{source}: not a tokendice trace (expected an object with 'steps'; write one with tokendice trace --json)")
    try:
        steps = data["steps"]
        return DiffSide(
            source=source, prompt=data.get("prompt"), model=data.get("model"), engine=data.get("engine"),
            tokens=[int(s["chosen"]["token_id"]) for s in steps], token_texts=[s["chosen"]["text"] for s in steps],
            model_logprobs=[_lp(s["chosen"].get("model_logprob")) for s in steps],
            top=[[_candidate(c) for c in s.get("top", [])] for s in steps], finish_reason=data.get("finish_reason"),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"{source}: malformed trace step ({exc!r})") from exc


def _side_from_run(store: Store, source: str, run_id: str, prompt_index: int, sample: int | None) -> DiffSide:
    run = store.get_run(run_id)
    if sample is None:
        trace = store.get_result(run.id, "trace")
        if trace is not None:
            return side_from_trace(trace, source)
        sample = 0
    found = [s for s in store.samples(run.id, prompt_index) if s.sample_id == sample]
    if not found:
        if not store.count_samples(run.id):
            raise StoreError(f"run {run.id} is a {run.kind} run with no stored generation to diff (status {run.status})")
        have = sorted(store.sample_ids(run.id, prompt_index))
        shown = f"{have[0]}..{have[-1]}" if have else "none"
        raise StoreError(f"run {run.id} has no sample {sample} for prompt {prompt_index} (samples: {shown})")
    s = found[0]
    report = store.get_result(run.id, "report") if run.kind == "audit" else None
    report = report if isinstance(report, dict) else {}
    side = DiffSide(
        source=source, prompt=_run_prompt(report, run.prompt, prompt_index), model=run.model, engine=run.engine,
        tokens=list(s.tokens), token_texts=list(s.token_texts), model_logprobs=[_lp(x) for x in s.model_logprobs],
        finish_reason=s.finish_reason,
    )  # fmt: skip
    for c in report.get("conditions") or []:  # an audit: which condition this sample ran under
        if isinstance(c, dict) and sample in (c.get("sample_ids") or []):
            side.condition = c.get("label")
            side.engine = c.get("label") if c.get("group") == "engines" else side.engine
    return side


def _run_prompt(report: dict[str, Any], prompt: str, prompt_index: int) -> str:
    prompts = report.get("prompts")
    if isinstance(prompts, list) and prompt_index < len(prompts) and isinstance(prompts[prompt_index], dict):
        return str(prompts[prompt_index].get("prompt", prompt))
    return prompt


def diff_sides(a: DiffSide, b: DiffSide) -> RunDiff:
    """Align two sides token by token: first divergence, log-prob drift on the common prefix."""
    k = first_divergence(a.tokens, b.tokens)
    common = len(a.tokens) if k is None else k
    report = RunDiff(a=a, b=b, first_divergence=k, common_steps=common)
    for t in range(common):
        la, lb = a.model_logprobs[t], b.model_logprobs[t]
        gap = None if la is None or lb is None else (0.0 if la == lb else abs(la - lb))
        report.drift.append({"step": t, "token_id": a.tokens[t], "text": a.token_texts[t],
                             "logprob_a": la, "logprob_b": lb, "abs_diff": gap})  # fmt: skip
    gaps = [d["abs_diff"] for d in report.drift if d["abs_diff"] is not None]
    report.max_drift = max(gaps) if gaps else None
    if k is not None:
        report.divergence = {"step": k, "a": _choice(a, k), "b": _choice(b, k), "top_a": _top(a, k), "top_b": _top(b, k)}
        for side, top in (("a", report.divergence["top_a"]), ("b", report.divergence["top_b"])):
            if top and len(top) > 1 and top[0]["model_logprob"] is not None and top[1]["model_logprob"] is not None:
                report.divergence[f"margin_{side}"] = top[0]["model_logprob"] - top[1]["model_logprob"]
    if a.prompt is not None and b.prompt is not None and a.prompt != b.prompt:
        report.notes.append("the two sides have different prompts")
    if a.model and b.model and a.model != b.model:
        report.notes.append(f"different models: {a.model} vs {b.model}")
    return report


def diff(spec_a: str | DiffSide, spec_b: str | DiffSide, store: Store | None = None, db: Any = None) -> RunDiff:
    """Load both sides (the store `store`, else the one at `db`, opened only for a run) and diff them;
    a side may also be given loaded (a `DiffSide`)."""
    stores = _Stores(store, db)
    try:
        a, b = (s if isinstance(s, DiffSide) else _load_side(s, stores) for s in (spec_a, spec_b))
        return diff_sides(a, b)
    finally:
        stores.close()


def _choice(side: DiffSide, step: int) -> dict[str, Any]:
    if step >= len(side.tokens):
        return {"token_id": None, "text": ENDED, "model_logprob": None, "finish_reason": side.finish_reason}
    return {"token_id": side.tokens[step], "text": side.token_texts[step], "model_logprob": side.model_logprobs[step]}


def _top(side: DiffSide, step: int) -> list[dict[str, Any]] | None:
    return side.top[step] if side.top is not None and step < len(side.top) else None


def _candidate(c: dict[str, Any]) -> dict[str, Any]:
    return {"token_id": int(c["token_id"]), "text": c["text"], "model_prob": c.get("model_prob"), "model_logprob": _lp(c.get("model_logprob"))}


def _lp(x: Any) -> float | None:
    """A log-prob from JSON or the store: None for null, NaN and -inf alike."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
