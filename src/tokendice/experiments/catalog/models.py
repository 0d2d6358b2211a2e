"""The models that run here without a download, as a result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from tokendice.experiments.results import Result


@dataclass
class ModelEntry:
    name: str
    source: str  # "embedded" or "hf cache"
    description: str
    default: bool = False
    gguf: str | None = None  # an embedded model's GGUF file, if its package is installed
    cache: str | None = None  # where the embedded model's converted copy lives
    converted: bool | None = None


@dataclass(repr=False)
class ModelList(Result):
    """Embedded models and the transformers models in the local Hugging Face cache."""

    kind: ClassVar[str] = "model_list"
    COLUMNS: ClassVar[tuple[str, ...]] = ("name", "source", "default", "converted", "description", "gguf", "cache")

    models: list[ModelEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "models": [asdict(m) for m in self.models]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelList:
        return cls([ModelEntry(**m) for m in data["models"]])

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(m) for m in self.models]

    def headline(self) -> str:
        default = next((m.name for m in self.models if m.default), "none")
        return f"{len(self.models)} models here without a download; default {default}"
