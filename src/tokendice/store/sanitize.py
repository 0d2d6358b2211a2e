"""Drop credentials from a manifest before it is stored.

A key is dropped (at any depth, in dicts nested in dicts or lists) when its
name, split into lower-case words at `_`, `-`, `.`, spaces and camelCase
boundaries, matches one of:

- the words joined contain `apikey`, `authorization`, `secret`, `password`,
  `passwd`, `credential` or `privatekey` (`api_key`, `X-Api-Key`,
  `client_secret`, `db_password`);
- a word is `bearer` or `cookie`;
- the last word is `token` (singular) and it is the only word or follows a
  credential word: `token`, `access_token`, `authToken`, `hf_token`.

So `max_new_tokens` (plural), `token_id`, `eos_token` and `top_k` are kept.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_JOINED = ("apikey", "authorization", "secret", "password", "passwd", "credential", "privatekey")
_WORDS = {"bearer", "cookie"}
_TOKEN_OWNERS = {
    "access", "auth", "bearer", "refresh", "api", "hf", "huggingface", "session",
    "github", "gh", "openai", "personal", "private", "user", "client", "oauth", "id",
}


def key_words(key: str) -> list[str]:
    """Split a key into lower-case words: 'maxNewTokens' -> ['max', 'new', 'tokens']."""
    return [w.lower() for w in _WORD.findall(key)]


def is_credential_key(key: str) -> bool:
    """Whether a manifest key names a credential (see the module docstring)."""
    words = key_words(key)
    joined = "".join(words)
    if any(part in joined for part in _JOINED):
        return True
    if _WORDS.intersection(words):
        return True
    if words and words[-1] == "token":
        return len(words) == 1 or words[-2] in _TOKEN_OWNERS
    return False


def sanitize(value: Any) -> Any:
    """A copy of `value` with every credential key removed, at any depth."""
    if isinstance(value, dict):
        return {
            k: sanitize(v) for k, v in value.items() if not (isinstance(k, str) and is_credential_key(k))
        }
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value
