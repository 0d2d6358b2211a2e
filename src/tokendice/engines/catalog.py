"""Which models a user can run here without a download: the embedded ones and the
transformers models already in the local Hugging Face cache."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokendice.engines.embedded import DEFAULT_MODEL, EMBEDDED_MODELS, converted_dir, is_converted, is_embedded


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str  # "embedded" or "hf cache"
    description: str


def cached_hub_models() -> list[str]:
    """Repo ids of the models in the local Hugging Face cache (none if it cannot be read)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # no cache directory, or an unreadable one: nothing cached
        return []
    return sorted(r.repo_id for r in info.repos if r.repo_type == "model")


def available_models() -> list[ModelInfo]:
    embedded = [ModelInfo(n, "embedded", m.description + (" (default)" if n == DEFAULT_MODEL else "")) for n, m in EMBEDDED_MODELS.items()]
    return embedded + [ModelInfo(r, "hf cache", "in the local Hugging Face cache") for r in cached_hub_models()]


def available_names() -> str:
    return ", ".join(m.name for m in available_models())


def local_dir(model: str | None) -> Path | None:
    """The directory a transformers model loads from, if it is here already (the converted
    embedded model, a local directory, or a hub id in the Hugging Face cache); nothing heavy
    is imported."""
    if is_embedded(model):
        name = model or DEFAULT_MODEL
        return converted_dir(name) if is_converted(name) else None
    path = Path(str(model)).expanduser()
    if (path / "config.json").is_file():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(str(model), "config.json")
    except Exception:  # an invalid repo id, an unreadable cache
        return None
    return Path(found).parent if isinstance(found, str) else None


def context_length(directory: Path) -> int | None:
    """The most positions a model takes (config.json's max_position_embeddings), if it says."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings") if isinstance(config, dict) else None
    return int(value) if isinstance(value, int) and value > 0 else None


def why_not_here(model: str | None) -> str | None:
    """Why a transformers model cannot load here without a download, or None when it can."""
    if is_embedded(model) or local_dir(model) is not None:
        return None
    path = Path(str(model)).expanduser()
    if path.exists():
        return f"{model}: not a transformers model directory (no config.json)"
    if str(model).startswith((".", "/", "~")) or str(model).count("/") > 1:
        return f"model path not found: {model}"
    return (f"model {model!r} is neither a local directory nor in the Hugging Face cache, and tokendice downloads "
            f"nothing; available here: {available_names()}")
