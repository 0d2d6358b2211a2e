"""Turning a user's prompt into token ids: raw text (the default) or the chat template."""

from __future__ import annotations

from tokendice.engines.base import Tokenizer
from tokendice.errors import ParameterError


def encode_prompt(tokenizer: Tokenizer, prompt: str, chat: bool = False) -> list[int]:
    """Token ids for `prompt`; with `chat`, wrapped as one user turn of the model's chat template."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError("prompt must be a non-empty string")
    ids = tokenizer.apply_chat_template(prompt) if chat else tokenizer.encode(prompt)
    if not ids:
        raise ParameterError("prompt encodes to zero tokens")
    return ids
