"""The runs in a store, as results: a list of runs, and one run's manifest and stored results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.experiments.results import Result, clip
from tokendice.store.records import RunRecord


@dataclass(repr=False)
class RunInfo(Result):
    """One stored run: what was asked (manifest), how far it got, and what it stored."""

    kind: ClassVar[str] = "run_info"
    COLUMNS: ClassVar[tuple[str, ...]] = ("key", "value")

    id: str
    run_kind: str
    created_at: str
    status: str
    prompt: str
    engine: str
    model: str
    n_requested: int | None
    n_samples: int
    manifest: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:  # type: ignore[override]
        return self.id

    @classmethod
    def of(cls, record: RunRecord, results: dict[str, Any] | None = None) -> RunInfo:
        return cls(record.id, record.kind, record.created_at, record.status, record.prompt, record.engine, record.model,
                   record.n_requested, record.n_samples, record.manifest, dict(results or {}))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = data.pop("run_kind")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        fields = dict(data)
        fields["run_kind"] = fields.pop("kind")
        return cls(**fields)

    def rows(self) -> list[dict[str, Any]]:
        return [{"key": k, "value": v} for k, v in self.to_dict().items() if k not in ("manifest", "results")]

    def headline(self) -> str:
        done = f"{self.n_samples}/{self.n_requested}" if self.n_requested else str(self.n_samples)
        return f"{self.run_kind} · {self.status} · {done} samples · {self.model} ({self.engine}) · {clip(self.prompt or '', 50)}"


@dataclass(repr=False)
class RunList(Result):
    """Runs of a store, newest first."""

    kind: ClassVar[str] = "run_list"
    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "kind", "created_at", "status", "engine", "model", "n_samples", "n_requested", "prompt")

    store: str
    runs: list[RunInfo] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> RunInfo:
        return self.runs[index]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "store": self.store, "runs": [{k: v for k, v in r.to_dict().items() if k != "results"} for r in self.runs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunList:
        return cls(data["store"], [RunInfo.from_dict(r) for r in data["runs"]])

    def rows(self) -> list[dict[str, Any]]:
        return [{"id": r.id, "kind": r.run_kind, "created_at": r.created_at, "status": r.status, "engine": r.engine, "model": r.model,
                 "n_samples": r.n_samples, "n_requested": r.n_requested, "prompt": r.prompt} for r in self.runs]

    def headline(self) -> str:
        return f"{len(self.runs)} runs in {self.store}"
