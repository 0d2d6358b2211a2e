"""The llama.cpp engine (white-box): raw logits from a GGUF file through llama-cpp-python.

A llama.cpp context holds one token sequence in its KV cache, so this engine
keeps no KV cache per row. Each row of an `EngineState` is its token sequence
(and where its prompt ends); `logits` evaluates the distinct rows one by one, in
sorted order, each reusing the KV cache of the prefix it shares with the row
evaluated before (llama.cpp drops the cache past that point). Logits are memoised
on the state, and for recently seen rows on the engine, so `select` (which only
copies rows) and duplicated rows cost nothing; `forget` drops them.

Evaluation schedule: a row's prompt as one batch from position 0, then every
later token one at a time, as llama.cpp's own generation (and its server) does.
llama.cpp's kernels are not batch-invariant (on the embedded model, a 6-token
prompt evaluated as 5 + 1 tokens moves a logit by 0.6), so a fixed schedule is
what makes a row's logits a function of its prompt and continuation alone, the
same whichever rows were evaluated before it.

Cost of one `logits` call: for each distinct row, the tokens after its common
prefix with the previous row (the whole prompt again if the prompts differ).
Rows sharing a prompt pay for it once; B rows that diverged k tokens ago cost
about B·k single-token evaluations per step (a batched KV cache, like the hf
engine's, costs B). Correct first, not fast.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tokendice.engines.base import EngineState, as_rows, as_token_matrix
from tokendice.engines.embedded import DEFAULT_MODEL, gguf_path, is_embedded
from tokendice.engines.spec import LLAMACPP
from tokendice.errors import EngineError, EngineUnavailableError, ModelNotFoundError, ParameterError

MEMO_SIZE = 256
"""Rows whose logits the engine remembers (each holds vocab_size floats)."""

Row = tuple[tuple[int, ...], int]
"""A row: its token sequence and the length of its prompt (evaluated as one batch)."""


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineUnavailableError(
            "the llamacpp engine needs llama-cpp-python: pip install 'tokendice[llamacpp]' "
            "(it compiles llama.cpp, which takes several minutes)"
        ) from exc
    return llama_cpp


class LlamaCppTokenizer:
    """Adapter from a llama_cpp.Llama's vocabulary to tokendice's Tokenizer protocol.

    `encode` adds BOS only where the GGUF says the model wants it (as transformers
    does) and parses special tokens written in the text (as transformers does).
    """

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.vocab_size = int(llm.n_vocab())
        eos = [llm.token_eos()]
        eot = getattr(llm._model, "token_eot", None)
        if eot is not None and eot() >= 0:
            eos.append(eot())
        self.eos_token_ids = tuple(dict.fromkeys(int(i) for i in eos if i is not None and i >= 0))
        self._pieces: dict[int, bytes] = {}

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)]

    def decode(self, ids: Sequence[int]) -> str:
        # Not Llama.detokenize: its 32-byte buffer per token drops longer pieces (SmolLM2 has
        # 47, runs of spaces and dashes); llama-cpp-python's server has the same flaw.
        data = b"".join(self._piece(int(i)) for i in ids)
        if ids and int(ids[0]) == self._llm.token_bos() and data[:1] == b" ":
            data = data[1:]  # as Llama.detokenize: no space after a leading BOS
        return data.decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = token_piece(self._llm, token)
        return piece

    def apply_chat_template(self, text: str) -> list[int]:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ParameterError("chat=True: this GGUF file has no chat template", param="chat")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = self._llm
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=_piece(vocab, vocab.token_eos()),
            bos_token=_piece(vocab, vocab.token_bos()),
            add_generation_prompt=True,
        )
        prompt = formatter(messages=[{"role": "user", "content": text}]).prompt
        return [int(t) for t in self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)]


class LlamaCppEngine:
    """White-box engine over a GGUF model run by llama.cpp (see the module docstring for costs)."""

    name = "llamacpp"
    kind = LLAMACPP

    def __init__(self, model: str | None = None, threads: int | None = None, n_ctx: int = 2048) -> None:
        LLAMACPP.option("threads").check(threads)
        LLAMACPP.option("n_ctx").check(n_ctx)
        llama_cpp = _import_llama_cpp()
        self.model_id = model or DEFAULT_MODEL
        self.model_path = _resolve(model)
        self.n_ctx = n_ctx
        self.context_length = n_ctx
        # llama-cpp-python's default for generation (half the CPUs: physical cores
        # on SMT machines), for prompt batches too, so every evaluation uses the same.
        self.threads = threads or max((os.cpu_count() or 2) // 2, 1)
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=0,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(f"llama.cpp cannot load {self.model_path}: {exc}") from exc
        self._llama_cpp = llama_cpp
        # Free the model while llama_cpp's module is intact (its __del__ fails at interpreter exit).
        weakref.finalize(self, self._llm.close)
        self.tokenizer = LlamaCppTokenizer(self._llm)
        self.vocab_size = self.tokenizer.vocab_size
        self._rewindable = not _is_recurrent(llama_cpp, self._llm)
        self._memo: OrderedDict[Row, torch.Tensor] = OrderedDict()
        self._loaded_prompt_len = -1  # prompt length of the sequence in llama.cpp's KV cache
        self.evaluated_tokens = 0  # tokens llama.cpp has evaluated: a cost counter

    # -- Engine protocol -------------------------------------------------------------

    def prefill(self, prompts: Sequence[Sequence[int]]) -> EngineState:
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ParameterError("every prompt needs at least one token")
        return self._state([(tuple(int(t) for t in p), len(p)) for p in prompts])

    def logits(self, state: EngineState) -> torch.Tensor:
        rows: _Rows = state.payload
        if rows.logits is None:
            computed = {key: self._row_logits(*key) for key in sorted(set(rows.keys))}
            rows.logits = torch.stack([computed[key] for key in rows.keys])
        return rows.logits

    def extend(self, state: EngineState, tokens: torch.Tensor) -> EngineState:
        matrix = as_token_matrix(tokens, state.batch_size).tolist()
        return self._state([(seq + tuple(new), p) for (seq, p), new in zip(state.payload.keys, matrix)])

    def select(self, state: EngineState, rows: torch.Tensor) -> EngineState:
        idx = as_rows(rows)
        old: _Rows = state.payload
        keys = [old.keys[int(i)] for i in idx]
        logits = old.logits[idx] if old.logits is not None else None
        return EngineState(len(keys), state.lengths[idx], _Rows(keys, logits))

    def rewind(self, state: EngineState, tokens: int) -> EngineState:
        """The state without the last `tokens` tokens of every row (rows are token sequences)."""
        if tokens <= 0:
            return state
        keys = [(seq[:-tokens], min(p, len(seq) - tokens)) for seq, p in state.payload.keys]
        return self._state(keys)

    def forget(self) -> None:
        """Drop every memoised logit and the loaded KV cache: the next evaluation starts from
        scratch, as a fresh process would (an audit's repeats call this to be independent runs)."""
        self._memo.clear()
        self._llm.reset()
        self._loaded_prompt_len = -1

    def describe(self) -> dict[str, Any]:
        meta = self._llm.metadata
        return {
            "engine": self.name,
            "model": self.model_id,
            "model_path": str(self.model_path),
            "file_type": meta.get("general.file_type"),
            "llama_cpp_python": getattr(self._llama_cpp, "__version__", None),
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "n_batch": int(self._llm.n_batch),
            "vocab_size": self.vocab_size,
            "evaluation": "row by row: prompt as one batch, then one token at a time; common prefixes reused",
        }

    # -- internals ---------------------------------------------------------------------

    def _state(self, keys: list[Row]) -> EngineState:
        longest = max((len(seq) for seq, _ in keys), default=0)
        if longest > self.n_ctx:
            raise ParameterError(f"sequence of {longest} tokens exceeds the context size n_ctx={self.n_ctx}")
        lengths = torch.tensor([len(seq) for seq, _ in keys], dtype=torch.long)
        return EngineState(len(keys), lengths, _Rows(keys, None))

    def _row_logits(self, seq: tuple[int, ...], prompt_len: int) -> torch.Tensor:
        key = (seq, prompt_len)
        cached = self._memo.get(key)
        if cached is not None:
            self._memo.move_to_end(key)
            return cached
        llm = self._llm
        keep = 0
        if self._loaded_prompt_len == prompt_len:  # the KV cache follows the same schedule
            keep = _common_prefix(llm.input_ids[: llm.n_tokens], seq, limit=len(seq) - 1)
        if keep < prompt_len or (not self._rewindable and keep < llm.n_tokens):
            keep = 0  # a prompt is only ever evaluated whole; recurrent state cannot rewind
        try:
            llm.n_tokens = keep  # Llama.eval drops the KV cache past n_tokens
            if keep == 0:
                llm.reset()
                llm.eval(list(seq[:prompt_len]))
            for token in seq[max(keep, prompt_len) :]:
                llm.eval([token])
        except RuntimeError as exc:
            llm.reset()
            self._loaded_prompt_len = -1
            raise EngineError(f"llama.cpp failed to evaluate a sequence of {len(seq)} tokens: {exc}") from exc
        self._loaded_prompt_len = prompt_len
        self.evaluated_tokens += len(seq) - keep
        logits = self._last_logits()
        self._memo[key] = logits
        if len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)
        return logits

    def _last_logits(self) -> torch.Tensor:
        ptr = self._llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        values = np.ctypeslib.as_array(ptr, shape=(self.vocab_size,))
        return torch.from_numpy(values.astype(np.float32, copy=True))


class _Rows:
    """Per-row keys, and their logits once computed (a memo, filled in place)."""

    __slots__ = ("keys", "logits")

    def __init__(self, keys: list[Row], logits: torch.Tensor | None) -> None:
        self.keys = keys
        self.logits = logits


def _common_prefix(loaded: np.ndarray, seq: tuple[int, ...], limit: int) -> int:
    n = min(len(loaded), limit)
    if n <= 0:
        return 0
    diff = np.nonzero(loaded[:n] != np.asarray(seq[:n], dtype=loaded.dtype))[0]
    return int(diff[0]) if len(diff) else n


def _is_recurrent(llama_cpp: Any, llm: Any) -> bool:
    checks = [getattr(llama_cpp, name, None) for name in ("llama_model_is_recurrent", "llama_model_is_hybrid")]
    return any(bool(check(llm.model)) for check in checks if check is not None)


def token_piece(llm: Any, token: int) -> bytes:
    """The bytes of one token (special tokens written out), however long."""
    import ctypes

    import llama_cpp

    size = 32
    while True:
        buffer = (ctypes.c_char * size)()
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, llama_cpp.llama_token(token), buffer, size, 0, True)
        if n >= 0:
            return bytes(buffer[:n])
        size = -n  # too small: llama.cpp says how much it needs


def _piece(llm: Any, token: int) -> str:
    if token is None or token < 0:
        return ""
    return token_piece(llm, token).decode("utf-8", errors="replace")


def _resolve(model: str | None) -> Path:
    if is_embedded(model):
        return gguf_path(model or DEFAULT_MODEL)
    path = Path(str(model)).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {model} (the llamacpp engine takes a .gguf path)")
    return path
