"""EngineSpec: one validated description of an engine, checked before anything heavy loads."""

from __future__ import annotations

import os

import pytest

from tokendice.engines.fake import FakeEngine
from tokendice.engines.spec import ENGINE_KINDS, FAKE, EngineSpec
from tokendice.errors import ParameterError


def test_defaults_and_given_options():
    spec = EngineSpec()
    assert (spec.engine, spec.model, dict(spec.options)) == ("hf", None, {})
    assert spec.get("dtype") == "float32" and spec.get("threads") is None
    spec = EngineSpec("hf", "smollm2-135m", dtype="bfloat16", threads=1)
    assert spec.options == {"dtype": "bfloat16", "threads": 1}
    assert spec.result_settings() == {"dtype": "bfloat16", "threads": 1, "attention": "sdpa", "kv_cache": True}


@pytest.mark.parametrize(
    "engine,options,message",
    [
        ("hf", {"dtpye": "float32"}, "takes no option 'dtpye'; did you mean 'dtype'?"),
        ("llamacpp", {"dtype": "float16"}, "the llamacpp engine takes no option 'dtype'"),
        ("hf", {"dtype": "float8"}, "dtype must be one of float32, bfloat16, float16"),
        ("hf", {"threads": 0}, "threads must be >= 1"),
        ("hf", {"threads": "2"}, "threads must be an integer"),
        ("hf", {"threads": 10_000}, f"at most {os.cpu_count()}"),
        ("hf", {"kv_cache": "yes"}, "kv_cache must be True or False"),
        ("openai", {}, "needs base_url"),
        ("openai", {"base_url": "http://x/v1", "timeout": 0}, "timeout must be >= 0.001"),
        ("hff", {}, "engine must be one of hf, llamacpp, openai, got 'hff'; did you mean 'hf'?"),
    ],
)
def test_bad_options_name_the_option(engine, options, message):
    with pytest.raises(ParameterError) as caught:
        EngineSpec(engine, **options)
    assert message in str(caught.value)


def test_transport_options_do_not_decide_results():
    spec = EngineSpec("openai", base_url="http://127.0.0.1:9/v1", timeout=3, concurrency=2, endpoint="chat")
    assert "timeout" not in spec.result_settings() and "concurrency" not in spec.result_settings()
    assert spec.result_settings()["endpoint"] == "chat"


def test_round_trip_equality_and_changes():
    spec = EngineSpec("hf", "m", dtype="float16")
    assert EngineSpec.from_dict(spec.to_dict()) == spec and hash(EngineSpec.from_dict(spec.to_dict())) == hash(spec)
    assert spec.with_(dtype=None) == EngineSpec("hf", "m")
    assert spec.with_(threads=2).options == {"dtype": "float16", "threads": 2}
    assert repr(spec) == "EngineSpec('hf', model='m', dtype='float16')"


def test_capabilities_are_attributes_of_the_kind():
    assert ENGINE_KINDS["hf"].white_box and ENGINE_KINDS["hf"].takes("dtype") and ENGINE_KINDS["hf"].merges_states
    assert ENGINE_KINDS["llamacpp"].white_box and not ENGINE_KINDS["llamacpp"].takes("dtype")
    assert not ENGINE_KINDS["openai"].white_box and ENGINE_KINDS["openai"].per_request_seeds
    fake = FakeEngine.from_table(["<eos>", "a"], {(): {"a": 1.0}})
    assert fake.kind is FAKE and fake.kind.capabilities()["logits"]
