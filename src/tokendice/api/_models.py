"""`models`: what runs here without a download."""

from __future__ import annotations

from tokendice.engines.catalog import cached_hub_models
from tokendice.engines.embedded import DEFAULT_MODEL, EMBEDDED_MODELS, converted_dir, ensure_converted, gguf_path, is_converted
from tokendice.errors import ModelNotFoundError
from tokendice.experiments.catalog.models import ModelEntry, ModelList
from tokendice.params import require_bool


def models(*, convert: bool = False) -> ModelList:
    """The embedded models (with where their GGUF file and converted copy are) and the
    transformers models in the local Hugging Face cache. `convert` converts the embedded
    models now (otherwise done on first use, about 30 s)."""
    require_bool("convert", convert)
    entries = []
    for name, m in EMBEDDED_MODELS.items():
        if convert:
            ensure_converted(name)
        try:
            gguf: str | None = str(gguf_path(name))
        except ModelNotFoundError:
            gguf = None
        entries.append(ModelEntry(name, "embedded", m.description, name == DEFAULT_MODEL, gguf, str(converted_dir(name)), is_converted(name)))
    entries += [ModelEntry(repo, "hf cache", "in the local Hugging Face cache") for repo in cached_hub_models()]
    return ModelList(entries)
