from __future__ import annotations

import pytest

from tokendice.store import Store
from tokendice.store.sanitize import is_credential_key, sanitize

KEPT = [
    "max_new_tokens", "top_k", "top_p", "token_id", "token_ids", "eos_token", "eos_token_id",
    "pad_token", "stop_tokens", "tokenizer", "n_tokens", "maxNewTokens", "temperature", "seed",
    "model", "prompt", "key", "keys", "monkey", "api_base", "author",
]
DROPPED = [
    "api_key", "apiKey", "API_KEY", "openai_api_key", "x-api-key", "Authorization", "authorization",
    "proxy_authorization", "password", "db_password", "passwd", "secret", "client_secret",
    "secret_key", "token", "access_token", "auth_token", "authToken", "hf_token", "HF_TOKEN",
    "refresh_token", "bearer", "Bearer_Token", "credentials", "private_key", "cookie",
]


@pytest.mark.parametrize("key", KEPT)
def test_kept(key: str) -> None:
    assert not is_credential_key(key)


@pytest.mark.parametrize("key", DROPPED)
def test_dropped(key: str) -> None:
    assert is_credential_key(key)


def test_nested_sanitize() -> None:
    manifest = {
        "params": {"max_new_tokens": 8, "top_k": 40, "api_key": "sk-123"},
        "engine": {"headers": {"Authorization": "Bearer x", "Accept": "json"}, "token_id": 3},
        "servers": [{"url": "http://h", "password": "p"}, "plain"],
        "token": "hf_abc",
    }
    assert sanitize(manifest) == {
        "params": {"max_new_tokens": 8, "top_k": 40},
        "engine": {"headers": {"Accept": "json"}, "token_id": 3},
        "servers": [{"url": "http://h"}, "plain"],
    }
    assert manifest["params"]["api_key"] == "sk-123"  # the caller's dict is not changed


def test_store_sanitises_manifest(store: Store) -> None:
    run = store.create_run("sample", {"params": {"max_new_tokens": 4, "top_k": 2, "nested": {"API_KEY": "x"}},
                                      "password": "p"}, "p", "openai", "m")
    stored = store.get_run(run).manifest
    assert stored == {"params": {"max_new_tokens": 4, "top_k": 2, "nested": {}}}
    raw = store._conn.execute("SELECT manifest FROM runs").fetchone()[0]
    assert "API_KEY" not in raw and "password" not in raw
