"""What a determinism audit found: one `ConditionResult` per condition, in an `AuditReport`.

The report is the audit's typed result: `to_dict()` is what `tokendice audit --json`
prints and what the store keeps (result 'report' of a run of kind 'audit'),
`from_dict` reads it back, and `rows()` is one row per condition (`to_dataframe()`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.experiments.results import Result, clip, init_fields
from tokendice.jsonutil import finite_json
from tokendice.store.records import SampleRecord


@dataclass
class ConditionResult:
    """How one condition compared with the baseline's reference run."""

    group: str
    label: str
    status: str  # "ran", "not applicable", "unavailable", "failed"
    verdict: str = ""
    setup: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None  # what the engine reported about itself
    repeats: int = 0
    n_identical: int = 0  # repeats whose tokens equal the reference's
    unique_outputs: int = 0  # distinct token sequences over the repeats
    tarr: float | None = None  # TARr@R of this condition's repeats: 1 if all agree, else 0
    first_divergence: int | None = None  # earliest step where a repeat chose differently from the reference
    divergent_repeats: int = 0
    divergent_repeat: int | None = None  # the repeat that forked first (index into sample_ids)
    baseline_token: str | None = None  # at the divergence step ("(end)" where one run stopped)
    condition_token: str | None = None
    margin: float | None = None  # reference's top-1 minus top-2 model log-prob at the divergence step
    condition_margin: float | None = None  # the same under this condition
    max_logprob_diff: float | None = None  # max |Δ model log-prob| of the reference tokens over the common steps
    max_logprob_diff_forced: float | None = None  # the same along all reference tokens (teacher-forced)
    outputs: list[str] = field(default_factory=list)  # the distinct completions
    sample_ids: list[int] = field(default_factory=list)  # where its runs are stored
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.status == "ran"

    @property
    def identical(self) -> bool:
        """Every repeat chose the reference's tokens."""
        return self.ran and self.n_identical == self.repeats

    @property
    def changes_output(self) -> bool:
        return self.ran and self.first_divergence is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConditionResult:
        return cls(**init_fields(cls, data))


@dataclass(repr=False)
class AuditReport(Result):
    """One request under a matrix of conditions against a baseline: which conditions change the
    output here, where the runs fork, and the recipe that reproduces it."""

    kind: ClassVar[str] = "audit"
    COLUMNS: ClassVar[tuple[str, ...]] = (
        "group", "label", "status", "verdict", "repeats", "n_identical", "unique_outputs", "tarr",
        "first_divergence", "margin", "max_logprob_diff", "seconds",
    )

    prompt: str
    prompt_ids: list[int]
    engine: str
    model: str
    params: dict[str, Any]
    seed: int
    rng: str
    repeats: int
    deterministic: bool
    baseline: dict[str, Any]
    conditions: list[ConditionResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. that the machine was busy
    wall_seconds: float = 0.0
    run_id: str | None = None
    samples: list[SampleRecord] = field(default_factory=list, repr=False, compare=False)  # kept as the run's samples

    def condition(self, label: str) -> ConditionResult:
        """The result of the condition labelled `label` ("baseline", "batch 8", "1 thread", ...)."""
        for c in self.conditions:
            if c.label == label:
                return c
        raise KeyError(f"{label!r}: the conditions are {', '.join(c.label for c in self.conditions)}")

    @property
    def changes_output(self) -> list[str]:
        """Labels of the conditions that changed the output."""
        return list(self.summary.get("changes_output", []))

    @property
    def recipe(self) -> str:
        """The settings that reproduce the baseline's output here, in words."""
        return str(self.summary.get("recipe", ""))

    @property
    def reproducible(self) -> bool:
        """The baseline gave the same tokens in every repeat."""
        return bool(self.summary.get("baseline_reproducible"))

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "samples"}
        return finite_json({"kind": self.kind, **data})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        """A report as `to_dict` wrote it (a stored run's 'report'), without its samples."""
        conditions = [ConditionResult.from_dict(c) for c in data.get("conditions", [])]
        return cls(**init_fields(cls, data, "conditions", "samples"), conditions=conditions)

    def rows(self) -> list[dict[str, Any]]:
        """One row per condition."""
        return [{name: getattr(c, name) for name in self.COLUMNS} for c in self.conditions]

    def headline(self) -> str:
        changed = self.changes_output
        shown = ", ".join(changed[:3]) + (f" +{len(changed) - 3} more" if len(changed) > 3 else "")
        base = "baseline reproducible" if self.reproducible else "baseline NOT reproducible"
        text = clip(str(self.baseline.get("text", "")), 30)
        return (f"{clip(self.prompt, 40)} → {text} · {len(self.conditions)} conditions × {self.repeats} · "
                f"changes the output: {shown or 'nothing'} · {base} · {self.model} ({self.engine})")
