"""Prompt sensitivity over a prompt suite: every prompt's variants measured, then summarised
per variant kind (which kind of tweak moves this model most), and stored as a run."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tokendice.analysis import posix_dataset
from tokendice.engines.base import Engine
from tokendice.errors import EngineError
from tokendice.experiments.perturb import UNITS_PER_PROMPT, PerturbSettings, Progress, PromptReport, VariantResult, analyse_prompt
from tokendice.experiments.variants import VariantSet

if TYPE_CHECKING:
    from tokendice.store.db import Store


@dataclass
class PerturbReport:
    """The result of `tokendice perturb`: one PromptReport per prompt and a summary over them."""

    engine: str
    model: str
    settings: PerturbSettings
    prompts: list[PromptReport]
    summary: dict[str, Any]
    engine_description: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "model": self.model,
            "params": self.settings.params.to_dict(),
            "settings": {k: v for k, v in self.settings.to_dict().items() if k != "params"},
            "seconds": self.seconds,
            "summary": self.summary,
            "prompts": [p.to_dict() for p in self.prompts],
        }


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
    the prompts it finished (its status says 'interrupted').
    """
    if not getattr(engine, "white_box", False):
        raise EngineError(f"perturb needs next-token logits; the {engine.name} engine only returns samples (use --engine hf or llamacpp)")
    start = time.perf_counter()
    report = PerturbReport(engine.name, engine.model_id, settings, [], summarize([]), dict(engine.describe()))
    if store is not None:
        report.run_id = _start_run(store, report, vsets, chat)
    try:
        for index, vset in enumerate(vsets):
            prefix = f"prompt {index + 1}/{len(vsets)} · " if len(vsets) > 1 else ""
            step = None if progress is None else (lambda k, label, p=prefix: progress(k, p + label))
            report.prompts.append(analyse_prompt(engine, vset, settings, step))
            report.summary = summarize(report.prompts)
            report.seconds = time.perf_counter() - start
            if store is not None:
                store.save_result(report.run_id, "report", report.to_dict())
    except BaseException:
        if store is not None:
            store.set_status(report.run_id, "interrupted")
        raise
    if store is not None:
        store.set_status(report.run_id, "complete")
    return report


def total_units(vsets: Sequence[VariantSet]) -> int:
    return UNITS_PER_PROMPT * len(vsets)


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _group(results: list[VariantResult]) -> dict[str, Any]:
    tvs = [r.tv.value for r in results if r.tv is not None]
    return {
        "n": len(results),
        "mean_tv": _mean(tvs),
        "mean_js_model": _mean([r.js_model for r in results]),
        "mean_js_sampling": _mean([r.js_sampling for r in results]),
        "top1_change_rate": _mean([float(r.top1_changed) for r in results]),
        "greedy_change_rate": _mean([float(not r.greedy_same) for r in results]),
        "mean_orig_top1_model_prob": _mean([r.orig_top1_model_prob for r in results]),
        "mean_orig_response_delta": _mean([r.orig_response_delta for r in results]),
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
    from tokendice.store import build_manifest

    prompts = [v.original.prompt for v in vsets]
    extra = {
        "perturb": {
            **{k: v for k, v in report.settings.to_dict().items() if k != "params"},
            "prompts": prompts,
            "chat": chat,
            "variants": [v.to_dict() for v in vsets],
        }
    }
    manifest = build_manifest("perturb", report.settings.params.to_dict(), report.engine_description, extra)
    label = prompts[0] if len(prompts) == 1 else f"({len(prompts)} prompts) {prompts[0]}"
    return store.create_run("perturb", manifest, label, report.engine, report.model)
