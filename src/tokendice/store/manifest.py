"""What every run records about how it was made: parameters, engine, software, machine."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from tokendice._version import __version__

PACKAGES = (
    "tokendice", "torch", "transformers", "numpy", "scipy", "gguf", "accelerate", "safetensors",
    "tokenizers", "llama-cpp-python", "httpx", "pandas", "pyarrow",
)
_RESERVED = ("kind", "created_by", "created_at", "params", "engine", "environment", "packages")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that can change results (missing ones left out)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment_info() -> dict[str, Any]:
    """Python, platform, CPU and torch/CUDA facts; torch is imported here, lazily."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch
    except ImportError:
        info["torch"] = None
        return info
    cuda = torch.cuda.is_available()
    info.update(
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        cuda_available=cuda,
        cuda_version=torch.version.cuda,
        cuda_device=torch.cuda.get_device_name(0) if cuda else None,
        cuda_device_count=torch.cuda.device_count() if cuda else 0,
    )
    return info


def build_manifest(
    kind: str,
    params: Mapping[str, Any],
    engine_description: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A run manifest: the experiment's parameters, the engine, software and machine.

    `extra` keys go at the top level (seed, rng mode, ...) and must not reuse
    a key the manifest already has.
    """
    manifest: dict[str, Any] = {
        "kind": kind,
        "created_by": f"tokendice {__version__}",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": dict(params),
        "engine": dict(engine_description),
        "environment": environment_info(),
        "packages": package_versions(),
    }
    clash = sorted(set(extra or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"manifest extra keys {clash} clash with reserved keys")
    manifest.update(extra or {})
    return manifest
