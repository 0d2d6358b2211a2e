"""Prompt sensitivity over a prompt suite: every prompt's variants measured, then summarised
per variant kind (which kind of tweak moves this model most), and stored as a run."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from tokendice.analysis import posix_dataset
from tokendice.engines.base import Engine
from tokendice.errors import EngineError, ParameterError, StoreError
from tokendice.experiments.perturb.perturb import UNITS_PER_PROMPT, PerturbSettings, Progress, PromptReport, VariantResult, analyse_prompt
from tokendice.experiments.perturb.variants import VariantSet
from tokendice.experiments.results import Result, clip
from tokendice.jsonutil import finite_json

if TYPE_CHECKING:
    from tokendice.store.db import Store
    from tokendice.store.records import RunRecord


ANSWER_COLUMNS = ("answer_tv", "answer_tv_low", "answer_tv_high")


@dataclass(repr=False)
class PerturbReport(Result):
    """Prompt sensitivity (`tokendice.perturb`): for every prompt, how far each variant moved the
    output (a PromptReport, variants ranked most disruptive first), and a summary over the prompts
    (per variant kind and per variant; POSIX, the mean psi). With an answer spec (`settings.answer`),
    each variant also has the TV between the answer distributions (`answer_tv`, hard bounds), and
    `to_dataframe()` the columns answer_tv, answer_tv_low, answer_tv_high."""

    kind: ClassVar[str] = "perturb"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "prompt_index", "prompt", "variant", "kind", "rank", "tv", "tv_low", "tv_high", "tv_method", "js_model",
        "js_sampling", "top1_changed", "greedy_same", "greedy_divergence", "orig_top1_model_prob",
    )  # fmt: skip

    engine: str
    model: str
    settings: PerturbSettings
    prompts: list[PromptReport] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=lambda: summarize([]))
    engine_description: dict[str, Any] = field(default_factory=dict)  # the manifest's; not in to_dict
    seconds: float = 0.0
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return finite_json({
            "kind": self.kind,
            "run_id": self.run_id,
            "engine": self.engine,
            "model": self.model,
            "params": self.settings.params.to_dict(),
            "settings": {k: v for k, v in self.settings.to_dict().items() if k != "params"},
            "seconds": self.seconds,
            "summary": self.summary,
            "prompts": [p.to_dict() for p in self.prompts],
        })  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerturbReport:
        """The inverse of `to_dict` (also of the reports tokendice stored before results had a
        `kind`); the summary is recomputed from the prompts, as it was made."""
        settings = PerturbSettings.from_dict({**data["settings"], "params": data["params"]})
        prompts = [PromptReport.from_dict(p) for p in data["prompts"]]
        return cls(data["engine"], data["model"], settings, prompts, summarize(prompts), {}, float(data.get("seconds") or 0.0), data.get("run_id"))

    def columns(self) -> list[str]:
        """COLUMNS, and with an answer spec the answer TV (its midpoint and hard bounds)."""
        return [*self.COLUMNS, *ANSWER_COLUMNS] if self.settings.answer else list(self.COLUMNS)

    def rows(self) -> list[dict[str, Any]]:
        """One row per (prompt, variant), in rank order within each prompt."""
        rows = []
        for index, p in enumerate(self.prompts):
            for r in p.variants:
                tv = r.tv
                rows.append({
                    "prompt_index": index, "prompt": p.prompt, "variant": r.variant.name, "kind": r.variant.kind,
                    "rank": r.rank, "tv": tv.value if tv else None, "tv_low": tv.low if tv else None,
                    "tv_high": tv.high if tv else None, "tv_method": tv.method if tv else None, "js_model": r.js_model,
                    "js_sampling": r.js_sampling, "top1_changed": r.top1_changed, "greedy_same": r.greedy_same,
                    "greedy_divergence": r.greedy_divergence, "orig_top1_model_prob": r.orig_top1_model_prob,
                })  # fmt: skip
                if self.settings.answer:
                    a = r.answer_tv
                    rows[-1].update(answer_tv=a.value if a else None, answer_tv_low=a.low if a else None, answer_tv_high=a.high if a else None)
        return rows

    def headline(self) -> str:
        where = f"{self.model} ({self.engine})"
        if not self.prompts:
            return f"no prompt measured yet · {where}"
        posix = self.summary.get("posix")
        if len(self.prompts) == 1:
            p = self.prompts[0]
            top = p.variants[0]
            moved = f"TV {top.tv.value:.3f}" if top.tv else f"JS {top.js_model:.3f}"
            return (f"{clip(p.prompt, 40)} · {len(p.variants)} variants · most disruptive: {top.variant.name} ({moved}) · "
                    f"POSIX {posix:.3f} · {where}")
        return (f"{len(self.prompts)} prompts ({clip(self.prompts[0].prompt, 30)}, …) · most disruptive kind: "
                f"{self.summary.get('most_disruptive_kind')} · POSIX {posix:.3f} · {where}")


def run_perturb(
    engine: Engine,
    vsets: Sequence[VariantSet],
    settings: PerturbSettings,
    progress: Progress | None = None,
    store: Store | None = None,
    chat: bool = False,
) -> PerturbReport:
    """Measure every prompt's variants and summarise them.

    With a `store`, the run (kind 'perturb') is created first and the report so
    far is saved under 'report' after every prompt, so an interrupted suite keeps
    the prompts it finished (its status says 'interrupted') and `resume_perturb`
    can measure the rest.
    """
    report = start_perturb_run(engine, vsets, settings, store, chat)
    return fill_perturb_run(engine, vsets, report, progress, store)


def start_perturb_run(
    engine: Engine,
    vsets: Sequence[VariantSet],
    settings: PerturbSettings,
    store: Store | None = None,
    chat: bool = False,
) -> PerturbReport:
    """An empty report; with a `store`, its run is created first, so that a caller knows the run id
    (to say how to resume) before any prompt is measured."""
    _require_logits(engine)
    report = PerturbReport(engine.name, engine.model_id, settings, [], summarize([]), dict(engine.describe()))
    if store is not None:
        report.run_id = _start_run(store, report, vsets, chat)
    return report


def fill_perturb_run(
    engine: Engine,
    vsets: Sequence[VariantSet],
    report: PerturbReport,
    progress: Progress | None = None,
    store: Store | None = None,
) -> PerturbReport:
    """Measure the prompts of `vsets` that `report` does not hold yet, saving it after each one.

    Each prompt is measured on its own, with the same seed and nothing carried over from
    the prompts before it, so a suite filled in several sessions stores the same report as
    one filled at once (only the wall times differ; `seconds` adds up the sessions).
    `progress` gets the units of the prompts measured now, none for those already held,
    so that a progress bar can start where the earlier session stopped. With a `store`,
    the run is 'running' meanwhile, 'complete' after, and 'interrupted' if anything stops it.
    """
    if store is None:
        return _fill(engine, vsets, report, progress, None)
    with store.recording(report.run_id):
        return _fill(engine, vsets, report, progress, store)


def _fill(engine: Engine, vsets: Sequence[VariantSet], report: PerturbReport, progress: Progress | None, store: Store | None) -> PerturbReport:
    base, start = report.seconds, time.perf_counter()
    for index in range(len(report.prompts), len(vsets)):
        prefix = f"prompt {index + 1}/{len(vsets)} · " if len(vsets) > 1 else ""
        step = None if progress is None else (lambda k, label, p=prefix: progress(k, p + label))
        report.prompts.append(analyse_prompt(engine, vsets[index], report.settings, step))
        report.summary = summarize(report.prompts)
        report.seconds = base + time.perf_counter() - start
        if store is not None:
            store.save_result(report.run_id, "report", report.to_dict())
    return report


def resume_perturb(engine: Engine, store: Store, run_id: str, progress: Progress | None = None) -> PerturbReport:
    """Finish an interrupted perturb run: measure the prompts its stored report lacks, into the same run."""
    report, vsets = load_perturb_run(store, run_id, engine)
    return fill_perturb_run(engine, vsets, report, progress, store)


def perturb_record(store: Store, run_id: str) -> RunRecord:
    """The run `run_id` names, if it can be resumed: it exists, is a perturb run and is not complete.

    Unknown ids are a ParameterError here, not a StoreError: the id is what the user typed.
    """
    try:
        record = store.get_run(run_id)
    except StoreError as exc:
        raise ParameterError(f"cannot resume: {exc}", param="run_id") from exc
    if record.kind != "perturb" or "perturb" not in record.manifest:
        raise ParameterError(f"run {record.id} is a {record.kind} run, not a perturb run", param="run_id")
    if record.status == "complete":
        raise ParameterError(f"run {record.id} is already complete: nothing to resume (tokendice runs show {record.id})", param="run_id")
    return record


def run_plan(record: RunRecord) -> tuple[PerturbSettings, list[VariantSet], bool]:
    """What a perturb run measures, from its manifest: settings with the sampler, every prompt's
    variants (as they were made, not rebuilt from today's generators) and the chat flag."""
    try:
        section = record.manifest["perturb"]
        settings = _manifest_settings(record.manifest)
        vsets = [VariantSet.from_dict(v) for v in section["variants"]]
        return settings, vsets, bool(section.get("chat", False))
    except (KeyError, TypeError) as exc:
        raise StoreError(f"run {record.id} cannot be read back: its manifest is incomplete ({exc!r})") from exc


def read_perturb_run(store: Store, record: RunRecord) -> PerturbReport:
    """The stored report of a perturb run so far (none of its prompts if it stopped before the first)."""
    settings, vsets, _ = run_plan(record)
    try:
        saved = store.get_result(record.id, "report")
        finished = [PromptReport.from_dict(p) for p in saved["prompts"]] if saved else []
    except (KeyError, TypeError) as exc:
        raise StoreError(f"run {record.id} cannot be read back: its report is incomplete ({exc!r})") from exc
    if len(finished) > len(vsets) or [p.prompt for p in finished] != [v.original.prompt for v in vsets[: len(finished)]]:
        raise StoreError(f"run {record.id} cannot be read back: its report does not follow the prompts of its manifest")
    seconds = float(saved.get("seconds") or 0.0) if saved else 0.0
    description = dict(record.manifest.get("engine") or {})
    return PerturbReport(record.engine, record.model, settings, finished, summarize(finished), description, seconds, record.id)


def load_perturb_run(store: Store, run_id: str, engine: Engine) -> tuple[PerturbReport, list[VariantSet]]:
    """The stored report so far and every prompt's variant set, to measure the rest on `engine`.

    Settings, sampler parameters, chat flag and variants all come from the manifest,
    never from the caller or from today's variant generators, so the prompts still to
    measure are measured exactly as the finished ones were.
    """
    record = perturb_record(store, run_id)
    _require_logits(engine)
    if (record.engine, record.model) != (engine.name, engine.model_id):
        raise ParameterError(f"run {record.id} was made with {record.engine}/{record.model}, not {engine.name}/{engine.model_id}", param="engine")
    _, vsets, _ = run_plan(record)
    return read_perturb_run(store, record), vsets


def _require_logits(engine: Engine) -> None:
    """Refuse a sampling-only engine before a run is created or resumed, not after its first prompt."""
    if not engine.kind.white_box:
        raise EngineError(f"perturb needs next-token logits; the {engine.name} engine only returns samples (use engine='hf' or 'llamacpp')")


def total_units(vsets: Sequence[VariantSet]) -> int:
    return UNITS_PER_PROMPT * len(vsets)


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _group(results: list[VariantResult]) -> dict[str, Any]:
    tvs = [r.tv.value for r in results if r.tv is not None]
    answer_tvs = [r.answer_tv.value for r in results if r.answer_tv is not None]
    answered = {"mean_answer_tv": _mean(answer_tvs)} if answer_tvs else {}  # only where answers were measured
    return {
        "n": len(results),
        "mean_tv": _mean(tvs),
        "mean_js_model": _mean([r.js_model for r in results]),
        "mean_js_sampling": _mean([r.js_sampling for r in results]),
        "top1_change_rate": _mean([float(r.top1_changed) for r in results]),
        "greedy_change_rate": _mean([float(not r.greedy_same) for r in results]),
        "mean_orig_top1_model_prob": _mean([r.orig_top1_model_prob for r in results]),
        "mean_orig_response_delta": _mean([r.orig_response_delta for r in results]),
        **answered,
    }


def _ranked(groups: dict[str, list[VariantResult]], key: str) -> list[dict[str, Any]]:
    rows = [{key: name, **_group(results)} for name, results in groups.items()]
    rows.sort(key=lambda row: (-(row["mean_tv"] or 0.0), -(row["mean_js_model"] or 0.0), row[key]))
    return rows


def summarize(reports: Sequence[PromptReport]) -> dict[str, Any]:
    """Per variant kind and per variant, over every prompt: mean TV and JS, change rates; mean POSIX."""
    if not reports:
        return {"prompts": 0}
    by_kind: dict[str, list[VariantResult]] = {}
    by_variant: dict[str, list[VariantResult]] = {}
    for report in reports:
        for r in report.variants:
            by_kind.setdefault(r.variant.kind, []).append(r)
            by_variant.setdefault(r.variant.name, []).append(r)
    kinds = _ranked(by_kind, "kind")
    posix = posix_dataset([(np.asarray(p.posix["loglik"]), p.posix["response_lengths"]) for p in reports])
    return {
        "prompts": len(reports),
        "posix": posix,
        "posix_per_prompt": [p.posix["psi"] for p in reports],
        "most_disruptive_kind": kinds[0]["kind"] if kinds else None,
        "by_kind": kinds,
        "by_variant": _ranked(by_variant, "variant"),
        "note": "ranked by mean TV (completion distribution), then mean first-step JS divergence (model)",
    }


def _start_run(store: Store, report: PerturbReport, vsets: Sequence[VariantSet], chat: bool) -> str:
    """Create the run of kind 'perturb' with its manifest: settings, prompts and every variant."""
    prompts = [v.original.prompt for v in vsets]
    extra = {
        "perturb": {
            **{k: v for k, v in report.settings.to_dict().items() if k != "params"},
            "prompts": prompts,
            "chat": chat,
            "variants": [v.to_dict() for v in vsets],
        }
    }
    label = prompts[0] if len(prompts) == 1 else f"({len(prompts)} prompts) {prompts[0]}"
    return store.start_run("perturb", label, report.engine_description, report.settings.params.to_dict(), extra)


def _manifest_settings(manifest: dict[str, Any]) -> PerturbSettings:
    """The settings `_start_run` wrote: manifest["perturb"] less prompts, chat and variants, with the params."""
    stored = {k: v for k, v in manifest["perturb"].items() if k not in ("prompts", "chat", "variants")}
    return PerturbSettings.from_dict({**stored, "params": manifest["params"]})
