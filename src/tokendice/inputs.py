"""What users hand in: prompts, prompt files, output paths. Checked before any model loads,
each problem a one-line ParameterError."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokendice.errors import ParameterError


def check_prompt(prompt: Any, name: str = "prompt") -> str:
    """A non-empty string that is valid Unicode (a command line can carry bytes that are not UTF-8)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {_short(prompt)}", param=name)
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParameterError(f"{name} is not valid UTF-8 text (byte {exc.start} of {_short(prompt)})", param=name) from None
    return prompt


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """Prompts from a UTF-8 text file: one a line; a line starting with `{` is a JSON object with a
    "prompt" field; in a .jsonl file every line is JSON (a string or such an object). Blank
    lines are skipped."""
    file = Path(path).expanduser()
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ParameterError(f"prompts file not found: {path}", param="prompts") from None
    except IsADirectoryError:
        raise ParameterError(f"prompts file {path} is a directory", param="prompts") from None
    except OSError as exc:
        raise ParameterError(f"cannot read prompts file {path}: {exc.strerror}", param="prompts") from None
    except UnicodeDecodeError as exc:
        raise ParameterError(f"prompts file {path} is not UTF-8 text (byte {exc.start} is not valid): one prompt a line, or JSONL", param="prompts") from None
    jsonl = file.suffix == ".jsonl"
    prompts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if jsonl or line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ParameterError(f"{path}:{number}: not JSON ({exc})", param="prompts") from None
            item = item.get("prompt") if isinstance(item, dict) else item
            if not isinstance(item, str):
                raise ParameterError(f'{path}:{number}: expected a string or a JSON object with a "prompt" string', param="prompts")
            line = item
        prompts.append(check_prompt(line, f"{path}:{number}"))
    if not prompts:
        raise ParameterError(f"prompts file {path} holds no prompts", param="prompts")
    return prompts


def check_output_path(path: str | os.PathLike[str], name: str = "output") -> Path:
    """A file path that can be written: its folder exists and it is not a folder itself."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise ParameterError(f"{name} {path} is a directory, not a file", param=name)
    folder = file.parent
    if not folder.is_dir():
        raise ParameterError(f"{name} {path}: folder {folder} does not exist", param=name)
    if not os.access(folder, os.W_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise ParameterError(f"{name} {path} cannot be written (permission denied)", param=name)
    return file


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
