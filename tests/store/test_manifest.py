from __future__ import annotations

import json
import sys

import pytest

from tokendice.store import build_manifest, environment_info, package_versions


def test_package_versions() -> None:
    versions = package_versions()
    assert versions["tokendice"]
    assert all(isinstance(v, str) for v in versions.values())


def test_environment_info() -> None:
    info = environment_info()
    assert info["python"] == sys.version.split()[0]
    assert info["cpu_count"] >= 1
    assert "torch" in info
    if info["torch"] is not None:
        assert info["torch_threads"] >= 1
        assert isinstance(info["cuda_available"], bool)


def test_build_manifest() -> None:
    m = build_manifest("sample", {"top_k": 5}, {"name": "fake", "dtype": "float32"}, {"seed": 7})
    assert m["kind"] == "sample" and m["seed"] == 7
    assert m["created_by"].startswith("tokendice ")
    assert m["params"] == {"top_k": 5} and m["engine"]["name"] == "fake"
    json.dumps(m)  # JSON-able as is
    with pytest.raises(ValueError, match="params"):
        build_manifest("sample", {}, {}, {"params": 1})
